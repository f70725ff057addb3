package eventstoretest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

var keyBehaviours = []behaviour{
	{"KeyedEventsGetVersionsFromOnePerKey", testKeyedEventsGetVersionsFromOnePerKey},
	{"UnkeyedEventsHaveNoVersion", testUnkeyedEventsHaveNoVersion},
	{"AppendRejectsAVersionWithoutKeyAndAKeyTooLong", testAppendRejectsAVersionWithoutKeyAndAKeyTooLong},
	{"ExplicitVersionsThatFollowOnAreAccepted", testExplicitVersionsThatFollowOnAreAccepted},
	{"AWrongExplicitVersionRefusesTheWholeAppend", testAWrongExplicitVersionRefusesTheWholeAppend},
	{"ADuplicateIDKeepsItsOriginalKeyAndVersion", testADuplicateIDKeepsItsOriginalKeyAndVersion},
	{"ReadKeyPagesByVersion", testReadKeyPagesByVersion},
	{"ReadKeyOfAKeyWithoutEventsIsEmpty", testReadKeyOfAKeyWithoutEventsIsEmpty},
	{"KeysThatShareAPrefixDoNotMix", testKeysThatShareAPrefixDoNotMix},
	{"KeysOfAnotherStreamDoNotMix", testKeysOfAnotherStreamDoNotMix},
	{"LookupFindsAStoredEventByID", testLookupFindsAStoredEventByID},
	{"ConcurrentAppendsToOneKeyGetDistinctVersionsWithoutGap", testConcurrentAppendsToOneKeyGetDistinctVersionsWithoutGap},
	{"ConcurrentAppendsExpectingTheSameKeyVersionLetOneWin", testConcurrentAppendsExpectingTheSameKeyVersionLetOneWin},
}

var keyCompactionBehaviours = []behaviour{
	{"CompactionKeepsKeyVersionsAndReadKeyStartsAtTheRetained", testCompactionKeepsKeyVersionsAndReadKeyStartsAtTheRetained},
	{"LookupForgetsCompactedEvents", testLookupForgetsCompactedEvents},
}

// keyed returns an event of key with the given id and version (0: the
// store picks the next one).
func keyed(id, key string, version uint64) engine.Message {
	e := event(id)
	e.Key, e.Version = key, version
	return e
}

// mustReadKey reads a key and fails the test on error.
func mustReadKey(t *testing.T, s eventstore.Store, stream, key string, after uint64, limit int) []engine.Message {
	t.Helper()
	got, err := s.ReadKey(t.Context(), stream, key, after, limit)
	if err != nil {
		t.Fatalf("ReadKey(%q, %q, %d, %d): got error %v, want nil", stream, key, after, limit, err)
	}
	return got
}

// mustKeyVersion returns a key's version and fails the test on error.
func mustKeyVersion(t *testing.T, s eventstore.Store, stream, key string) uint64 {
	t.Helper()
	v, err := s.KeyVersion(t.Context(), stream, key)
	if err != nil {
		t.Fatalf("KeyVersion(%q, %q): got error %v, want nil", stream, key, err)
	}
	return v
}

// mustLookup looks an id up and fails the test on error.
func mustLookup(t *testing.T, s eventstore.Store, stream, id string) (engine.Message, bool) {
	t.Helper()
	m, ok, err := s.Lookup(t.Context(), stream, id)
	if err != nil {
		t.Fatalf("Lookup(%q, %q): got error %v, want nil", stream, id, err)
	}
	return m, ok
}

// checkVersions fails unless got are events of key with versions first,
// first+1, ... (n of them).
func checkVersions(t *testing.T, what string, got []engine.Message, key string, first uint64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: got %d events, want %d", what, len(got), n)
	}
	for i, m := range got {
		if want := first + uint64(i); m.Key != key || m.Version != want {
			t.Fatalf("%s: event %d (id %q) has key %q version %d, want %q %d", what, i, m.ID, m.Key, m.Version, key, want)
		}
	}
}

// checkKeyHolds fails unless key reads as exactly want (events as
// stored, oldest first) and its version is version.
func checkKeyHolds(t *testing.T, s eventstore.Store, stream, key string, want []engine.Message, version uint64) {
	t.Helper()
	if v := mustKeyVersion(t, s, stream, key); v != version {
		t.Errorf("KeyVersion(%q): got %d, want %d", key, v, version)
	}
	got := mustReadKey(t, s, stream, key, 0, len(want)+10)
	if len(got) != len(want) {
		t.Fatalf("ReadKey(%q): got %d events, want %d", key, len(got), len(want))
	}
	for i := range got {
		checkStored(t, fmt.Sprintf("ReadKey(%q) event %d", key, i), got[i], want[i])
	}
}

func testKeyedEventsGetVersionsFromOnePerKey(t *testing.T, s eventstore.Store) {
	sub := subscribe(t, s, ordersStream, 0)
	first := mustAppend(t, s, ordersStream, eventstore.Any,
		keyed("a1", "a", 0), keyed("b1", "b", 0), event("u1"), keyed("a2", "a", 0)).Events
	second := mustAppend(t, s, ordersStream, eventstore.Any, keyed("a3", "a", 0), keyed("b2", "b", 0)).Events
	appended := append(first, second...)
	want := map[string]uint64{"a1": 1, "b1": 1, "u1": 0, "a2": 2, "a3": 3, "b2": 2}
	read := mustRead(t, s, ordersStream, 0, 10)
	checkSequences(t, "Read", read, 1, len(appended))
	for i, m := range appended {
		if m.Version != want[m.ID] {
			t.Errorf("appended %q: got version %d, want %d", m.ID, m.Version, want[m.ID])
		}
		checkStored(t, "Read of "+m.ID, read[i], m)
		checkStored(t, "subscription's "+m.ID, mustNext(t, sub), m)
	}
	checkKeyHolds(t, s, ordersStream, "a", []engine.Message{appended[0], appended[3], appended[4]}, 3)
	checkKeyHolds(t, s, ordersStream, "b", []engine.Message{appended[1], appended[5]}, 2)
}

func testUnkeyedEventsHaveNoVersion(t *testing.T, s eventstore.Store) {
	res := mustAppend(t, s, ordersStream, eventstore.Any, events("u", 3)...)
	for _, m := range append(res.Events, mustRead(t, s, ordersStream, 0, 10)...) {
		if m.Key != "" || m.Version != 0 {
			t.Errorf("unkeyed event %q: got key %q version %d, want none", m.ID, m.Key, m.Version)
		}
	}
	if v := mustKeyVersion(t, s, ordersStream, ""); v != 0 {
		t.Errorf(`KeyVersion(""): got %d, want 0`, v)
	}
	if got := mustReadKey(t, s, ordersStream, "", 0, 10); len(got) != 0 {
		t.Errorf(`ReadKey(""): got %d events, want none: unkeyed events are no key's`, len(got))
	}
}

func testAppendRejectsAVersionWithoutKeyAndAKeyTooLong(t *testing.T, s eventstore.Store) {
	versioned := event("v")
	versioned.Version = 1
	tooLong := keyed("long", strings.Repeat("k", eventstore.MaxKeyLen+1), 0)
	for name, evs := range map[string][]engine.Message{
		"VersionWithoutKey": {keyed("ok", "a", 0), versioned},
		"KeyTooLong":        {keyed("ok", "a", 0), tooLong},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Append(testContext(t), ordersStream, eventstore.Any, evs)
			if !errors.Is(err, eventstore.ErrInvalidAppend) || !strings.Contains(err.Error(), "events[1]") {
				t.Fatalf("Append: got error %v, want one wrapping ErrInvalidAppend naming events[1]", err)
			}
			if v := mustVersion(t, s, ordersStream); v != 0 {
				t.Errorf("Version after the rejected append: got %d, want 0", v)
			}
			if v := mustKeyVersion(t, s, ordersStream, "a"); v != 0 {
				t.Errorf("KeyVersion after the rejected append: got %d, want 0", v)
			}
		})
	}
}

func testExplicitVersionsThatFollowOnAreAccepted(t *testing.T, s eventstore.Store) {
	res := mustAppend(t, s, ordersStream, eventstore.Any, keyed("a1", "a", 1), keyed("b1", "b", 1), keyed("a2", "a", 2))
	checkVersions(t, "first append of a", []engine.Message{res.Events[0], res.Events[2]}, "a", 1, 2)
	// Explicit and picked versions mix, each following the one before.
	res = mustAppend(t, s, ordersStream, eventstore.Any, keyed("a3", "a", 0), keyed("a4", "a", 4), keyed("b2", "b", 2))
	checkVersions(t, "second append of a", res.Events[:2], "a", 3, 2)
	checkVersions(t, "second append of b", res.Events[2:], "b", 2, 1)
	checkVersions(t, "ReadKey of a", mustReadKey(t, s, ordersStream, "a", 0, 10), "a", 1, 4)
}

func testAWrongExplicitVersionRefusesTheWholeAppend(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, keyed("a1", "a", 0), keyed("a2", "a", 0))
	tests := []struct {
		name   string
		events []engine.Message
		want   eventstore.KeyConflictError
	}{
		{"AheadOfTheKey", []engine.Message{keyed("b1", "b", 0), keyed("x", "a", 4)},
			eventstore.KeyConflictError{Stream: ordersStream, Key: "a", Expected: 3, Actual: 2}},
		{"BehindTheKey", []engine.Message{event("u"), keyed("x", "a", 2)},
			eventstore.KeyConflictError{Stream: ordersStream, Key: "a", Expected: 1, Actual: 2}},
		{"ANewKeyNotFromOne", []engine.Message{keyed("x", "new", 2)},
			eventstore.KeyConflictError{Stream: ordersStream, Key: "new", Expected: 1, Actual: 0}},
		// The second event repeats the first's version: it follows version 3,
		// which the first takes.
		{"RepeatedInTheCall", []engine.Message{keyed("x", "a", 3), keyed("y", "a", 3)},
			eventstore.KeyConflictError{Stream: ordersStream, Key: "a", Expected: 2, Actual: 3}},
		{"AfterRightOnes", []engine.Message{keyed("x", "a", 3), keyed("y", "a", 4), keyed("z", "a", 6)},
			eventstore.KeyConflictError{Stream: ordersStream, Key: "a", Expected: 5, Actual: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Append(testContext(t), ordersStream, eventstore.Any, tt.events)
			var conflict *eventstore.KeyConflictError
			if !errors.As(err, &conflict) || !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
				t.Fatalf("Append: got error %v, want a *KeyConflictError wrapping ErrWrongExpectedVersion", err)
			}
			if *conflict != tt.want {
				t.Errorf("conflict: got %+v, want %+v", *conflict, tt.want)
			}
			// Nothing of the call is stored, not even its events before
			// the refused one or of other keys.
			if v := mustVersion(t, s, ordersStream); v != 2 {
				t.Errorf("Version after the refused append: got %d, want 2", v)
			}
			for _, key := range []string{"a", "b", "new"} {
				want := uint64(0)
				if key == "a" {
					want = 2
				}
				if v := mustKeyVersion(t, s, ordersStream, key); v != want {
					t.Errorf("KeyVersion(%q) after the refused append: got %d, want %d", key, v, want)
				}
			}
			for _, e := range tt.events {
				if _, ok := mustLookup(t, s, ordersStream, e.ID); ok {
					t.Errorf("Lookup(%q) after the refused append: found, want nothing stored", e.ID)
				}
			}
		})
	}
	// The right version still goes in.
	if got := mustAppend(t, s, ordersStream, eventstore.Any, keyed("a3", "a", 3)).Events[0]; got.Version != 3 {
		t.Fatalf("append of a's version 3 after the refusals: got version %d, want 3", got.Version)
	}
}

func testADuplicateIDKeepsItsOriginalKeyAndVersion(t *testing.T, s eventstore.Store) {
	original := mustAppend(t, s, ordersStream, eventstore.Any, keyed("a1", "a", 0)).Events[0]
	// A retry under another key and a version that would conflict is still
	// the stored event: it takes no version of either key.
	retry := mustAppend(t, s, ordersStream, eventstore.Any, keyed("a1", "b", 7))
	if retry.Appended != 0 {
		t.Fatalf("retry: got Appended %d, want 0", retry.Appended)
	}
	checkStored(t, "retried event", retry.Events[0], original)
	if v := mustKeyVersion(t, s, ordersStream, "b"); v != 0 {
		t.Errorf(`KeyVersion("b") after a duplicate claimed it: got %d, want 0`, v)
	}

	// A batch of a duplicate and a new event: the new one gets version 2, as
	// if the duplicate were not there; an ID twice in one call is one event.
	res := mustAppend(t, s, ordersStream, eventstore.Any,
		keyed("a1", "a", 1), keyed("a2", "a", 2), keyed("a3", "a", 0), keyed("a3", "a", 9))
	if res.Appended != 2 {
		t.Fatalf("batch with duplicates: got Appended %d, want 2", res.Appended)
	}
	checkStored(t, "duplicate in the batch", res.Events[0], original)
	checkVersions(t, "new events of the batch", res.Events[1:3], "a", 2, 2)
	checkStored(t, "the same ID twice in the batch", res.Events[3], res.Events[2])
	checkKeyHolds(t, s, ordersStream, "a", []engine.Message{original, res.Events[1], res.Events[2]}, 3)
}

func testReadKeyPagesByVersion(t *testing.T, s eventstore.Store) {
	// Ten events of k among others of other keys and none.
	all := make([]engine.Message, 0, 10)
	for i := range 10 {
		batch := mustAppend(t, s, ordersStream, eventstore.Any,
			keyed(fmt.Sprintf("k%d", i+1), "k", 0), keyed(fmt.Sprintf("o%d", i), "other", 0), event(fmt.Sprintf("u%d", i))).Events
		all = append(all, batch[0])
	}
	pages := []struct {
		after      uint64
		limit      int
		first      uint64
		n          int
		whatLimits string
	}{
		{0, 3, 1, 3, "the limit"},
		{3, 3, 4, 3, "the limit"},
		{9, 3, 10, 1, "the end"},
		{0, 0, 1, 10, "the default limit, more than the key holds"},
		{10, 3, 0, 0, "after the last version"},
		{1000, 3, 0, 0, "after past the end"},
	}
	for _, p := range pages {
		got := mustReadKey(t, s, ordersStream, "k", p.after, p.limit)
		what := fmt.Sprintf("ReadKey after %d limit %d (%s)", p.after, p.limit, p.whatLimits)
		checkVersions(t, what, got, "k", p.first, p.n)
		for i := range got {
			checkStored(t, what, got[i], all[p.first-1+uint64(i)])
		}
	}
}

func testReadKeyOfAKeyWithoutEventsIsEmpty(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, keyed("a1", "a", 0))
	for _, c := range []struct{ stream, key string }{{ordersStream, "none"}, {"unknown", "a"}} {
		if got := mustReadKey(t, s, c.stream, c.key, 0, 10); len(got) != 0 {
			t.Errorf("ReadKey(%q, %q): got %d events, want none", c.stream, c.key, len(got))
		}
		if v := mustKeyVersion(t, s, c.stream, c.key); v != 0 {
			t.Errorf("KeyVersion(%q, %q): got %d, want 0", c.stream, c.key, v)
		}
	}
}

// Keys where one is the start of another, or differs by a zero byte or a
// multi-byte rune, or is as long as a key may be, are separate keys.
func testKeysThatShareAPrefixDoNotMix(t *testing.T, s eventstore.Store) {
	long := strings.Repeat("é", eventstore.MaxKeyLen/2) // 256 bytes
	keys := []string{"a", "ab", "a\x00", "a\x00b", "b", "ä", "a\u0308", long, long[:eventstore.MaxKeyLen-2] + "e"}
	byKey := make(map[string][]engine.Message)
	// Key i gets i+1 events, interleaved round by round.
	for round := range len(keys) {
		var batch []engine.Message
		for i, key := range keys {
			if round <= i {
				batch = append(batch, keyed(fmt.Sprintf("%d-%d", i, round), key, 0))
			}
		}
		for _, m := range mustAppend(t, s, ordersStream, eventstore.Any, batch...).Events {
			byKey[m.Key] = append(byKey[m.Key], m)
		}
	}
	for i, key := range keys {
		if len(byKey[key]) != i+1 {
			t.Fatalf("key %q: appended %d events, want %d", key, len(byKey[key]), i+1)
		}
		checkKeyHolds(t, s, ordersStream, key, byKey[key], uint64(i+1))
		checkVersions(t, fmt.Sprintf("ReadKey(%q) after 1", key), mustReadKey(t, s, ordersStream, key, 1, 100), key, 2, i)
	}
}

func testKeysOfAnotherStreamDoNotMix(t *testing.T, s eventstore.Store) {
	orders := mustAppend(t, s, ordersStream, eventstore.Any, keyed("o1", "k", 0), keyed("o2", "k", 0)).Events
	payments := mustAppend(t, s, paymentsStream, eventstore.Any, keyed("p1", "k", 0)).Events
	checkKeyHolds(t, s, ordersStream, "k", orders, 2)
	checkKeyHolds(t, s, paymentsStream, "k", payments, 1)
}

func testLookupFindsAStoredEventByID(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, ordersStream, eventstore.Any, event("u"), keyed("a1", "a", 0), keyed("a2", "a", 0)).Events
	for _, want := range stored {
		got, ok := mustLookup(t, s, ordersStream, want.ID)
		if !ok {
			t.Fatalf("Lookup(%q): not found, want the stored event", want.ID)
		}
		checkStored(t, "Lookup("+want.ID+")", got, want)
	}
	for _, c := range []struct{ stream, id string }{{ordersStream, "never"}, {paymentsStream, "a1"}, {"unknown", "a1"}} {
		if m, ok := mustLookup(t, s, c.stream, c.id); ok {
			t.Errorf("Lookup(%q, %q): found %q, want nothing", c.stream, c.id, m.ID)
		}
	}
}

func testConcurrentAppendsToOneKeyGetDistinctVersionsWithoutGap(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	versions := make([][]uint64, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range appendsPerWriter {
				res, err := s.Append(ctx, ordersStream, eventstore.Any, []engine.Message{keyed(fmt.Sprintf("w%d-%d", w, i), "k", 0)})
				if err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
				versions[w] = append(versions[w], res.Events[0].Version)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = writers * appendsPerWriter
	seen := make(map[uint64]bool, total)
	for w, vs := range versions {
		for i, v := range vs {
			if v < 1 || v > total || seen[v] {
				t.Fatalf("writer %d append %d: got version %d, want a new one in 1..%d", w, i, v, total)
			}
			if i > 0 && v <= vs[i-1] {
				t.Fatalf("writer %d: version %d after %d, want increasing", w, v, vs[i-1])
			}
			seen[v] = true
		}
	}
	if v := mustKeyVersion(t, s, ordersStream, "k"); v != total {
		t.Fatalf("KeyVersion: got %d, want %d", v, total)
	}
	checkVersions(t, "ReadKey", mustReadKey(t, s, ordersStream, "k", 0, total+1), "k", 1, total)
}

// Appenders that each read the key's version and append the next one race:
// every version is won exactly once and every loser is told of a conflict.
func testConcurrentAppendsExpectingTheSameKeyVersionLetOneWin(t *testing.T, s eventstore.Store) {
	const target = 60
	ctx := testContext(t)
	var (
		mu        sync.Mutex
		winners   = make(map[uint64]string)
		conflicts int
	)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				v, err := s.KeyVersion(ctx, ordersStream, "k")
				if err != nil {
					errs <- err
					return
				}
				if v >= target {
					return
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				res, err := s.Append(ctx, ordersStream, eventstore.Any, []engine.Message{keyed(id, "k", v+1)})
				mu.Lock()
				switch {
				case errors.Is(err, eventstore.ErrWrongExpectedVersion):
					conflicts++
				case err != nil:
					errs <- fmt.Errorf("writer %d: %w", w, err)
				case res.Events[0].Version != v+1:
					errs <- fmt.Errorf("writer %d: appended version %d after reading %d, want %d", w, res.Events[0].Version, v, v+1)
				default:
					if other, dup := winners[v+1]; dup {
						errs <- fmt.Errorf("version %d won by both %q and %q", v+1, other, id)
					}
					winners[v+1] = id
				}
				mu.Unlock()
				if err != nil && !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(winners) != target {
		t.Fatalf("winners: got %d distinct versions, want %d", len(winners), target)
	}
	got := mustReadKey(t, s, ordersStream, "k", 0, target+1)
	checkVersions(t, "ReadKey", got, "k", 1, target)
	for _, m := range got {
		if winners[m.Version] != m.ID {
			t.Fatalf("version %d: stored %q, won by %q", m.Version, m.ID, winners[m.Version])
		}
	}
	t.Logf("%d conflicts among %d appenders", conflicts, writers)
}

func testCompactionKeepsKeyVersionsAndReadKeyStartsAtTheRetained(t *testing.T, s eventstore.Store) {
	// Sequences 1..6: a1 b1 a2 b2 a3 u.
	stored := mustAppend(t, s, ordersStream, eventstore.Any,
		keyed("a1", "a", 0), keyed("b1", "b", 0), keyed("a2", "a", 0), keyed("b2", "b", 0), keyed("a3", "a", 0), event("u")).Events
	mustCompact(t, s, ordersStream, 4, 3) // a1 b1 a2
	checkKeyHolds(t, s, ordersStream, "a", []engine.Message{stored[4]}, 3)
	checkKeyHolds(t, s, ordersStream, "b", []engine.Message{stored[3]}, 2)
	checkVersions(t, "ReadKey of a after 1, a compacted version", mustReadKey(t, s, ordersStream, "a", 1, 10), "a", 3, 1)

	// Every event of both keys goes; their versions stay and go on.
	mustCompact(t, s, ordersStream, 100, 2)
	checkKeyHolds(t, s, ordersStream, "a", nil, 3)
	checkKeyHolds(t, s, ordersStream, "b", nil, 2)
	next := mustAppend(t, s, ordersStream, eventstore.Any, keyed("a4", "a", 0), keyed("b3", "b", 3)).Events
	checkVersions(t, "a after compaction", next[:1], "a", 4, 1)
	checkVersions(t, "b after compaction", next[1:], "b", 3, 1)
	checkKeyHolds(t, s, ordersStream, "a", next[:1], 4)
	// A compacted version cannot be taken again.
	_, err := s.Append(t.Context(), ordersStream, eventstore.Any, []engine.Message{keyed("again", "a", 1)})
	if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("append of a's compacted version 1: got %v, want a key conflict", err)
	}
}

func testLookupForgetsCompactedEvents(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, ordersStream, eventstore.Any, keyed("a1", "a", 0), keyed("a2", "a", 0), event("u")).Events
	mustCompact(t, s, ordersStream, 2, 1)
	if _, ok := mustLookup(t, s, ordersStream, "a1"); ok {
		t.Errorf("Lookup of compacted a1: found, want nothing")
	}
	got, ok := mustLookup(t, s, ordersStream, "a2")
	if !ok {
		t.Fatal("Lookup of retained a2: not found")
	}
	checkStored(t, "Lookup of retained a2", got, stored[1])
}
