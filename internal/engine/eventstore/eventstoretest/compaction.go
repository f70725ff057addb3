package eventstoretest

import (
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

var compactionBehaviours = []behaviour{
	{"CompactedEventsAreGoneFromReadAndTheRestIsIntact", testCompactedEventsAreGoneFromReadAndTheRestIsIntact},
	{"CompactionKeepsTheVersionAndTheNextSequences", testCompactionKeepsTheVersionAndTheNextSequences},
	{"CompactingBeyondTheLastEventKeepsTheLastEvent", testCompactingBeyondTheLastEventKeepsTheLastEvent},
	{"CompactIsIdempotent", testCompactIsIdempotent},
	{"CompactingAnUnknownStreamRemovesNothing", testCompactingAnUnknownStreamRemovesNothing},
	{"CompactionTouchesOnlyItsStream", testCompactionTouchesOnlyItsStream},
	{"IDsOfCompactedEventsAreForgottenAndTheRetainedOnesKept", testIDsOfCompactedEventsAreForgottenAndTheRetainedOnesKept},
	{"SubscriptionBeforeTheCutContinuesFromTheFirstRetainedEvent", testSubscriptionBeforeTheCutContinuesFromTheFirstRetainedEvent},
	{"SubscriptionReadingWhileCompactedSeesEveryRetainedEventInOrder", testSubscriptionReadingWhileCompactedSeesEveryRetainedEventInOrder},
	{"ConcurrentAppendsDuringCompactionLoseNothing", testConcurrentAppendsDuringCompactionLoseNothing},
}

// mustCompact compacts and fails the test on error or on another count.
func mustCompact(t *testing.T, s eventstore.Store, stream string, before uint64, wantRemoved int) {
	t.Helper()
	removed, err := s.(eventstore.Compactor).Compact(t.Context(), stream, before)
	if err != nil {
		t.Fatalf("Compact(%q, %d): got error %v, want nil", stream, before, err)
	}
	if removed != wantRemoved {
		t.Fatalf("Compact(%q, %d): removed %d events, want %d", stream, before, removed, wantRemoved)
	}
}

// mustFirst returns the stream's first retained sequence and fails the
// test on error.
func mustFirst(t *testing.T, s eventstore.Store, stream string) uint64 {
	t.Helper()
	first, err := s.(eventstore.Compactor).First(t.Context(), stream)
	if err != nil {
		t.Fatalf("First(%q): got error %v, want nil", stream, err)
	}
	return first
}

// checkRetained fails unless the stream holds exactly stored[first-1:]
// (stored being every event appended, in order), whatever after a Read
// starts from below first.
func checkRetained(t *testing.T, s eventstore.Store, stream string, stored []engine.Message, first uint64) {
	t.Helper()
	if got := mustFirst(t, s, stream); got != first {
		t.Fatalf("First(%q): got %d, want %d", stream, got, first)
	}
	want := stored[first-1:]
	for _, after := range []uint64{0, first / 2, first - 1} {
		got := mustRead(t, s, stream, after, len(stored)+1)
		checkSequences(t, fmt.Sprintf("Read after %d", after), got, first, len(want))
		for i := range got {
			checkStored(t, fmt.Sprintf("Read after %d: event %d", after, i), got[i], want[i])
		}
	}
}

func testCompactedEventsAreGoneFromReadAndTheRestIsIntact(t *testing.T, s eventstore.Store) {
	evs := events("a", 10)
	evs[6].Headers = map[string]string{"note": "seven"}
	evs[2].Headers = map[string]string{"note": "three"}
	stored := mustAppend(t, s, ordersStream, eventstore.Any, evs...).Events
	if got := mustFirst(t, s, ordersStream); got != 1 {
		t.Fatalf("First before compaction: got %d, want 1", got)
	}
	mustCompact(t, s, ordersStream, 5, 4)
	checkRetained(t, s, ordersStream, stored, 5)
	// A Read after a retained sequence is unchanged.
	checkSequences(t, "Read after 7", mustRead(t, s, ordersStream, 7, 10), 8, 3)
}

func testCompactionKeepsTheVersionAndTheNextSequences(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, ordersStream, eventstore.Any, events("a", 10)...).Events
	mustCompact(t, s, ordersStream, 9, 8)
	if v := mustVersion(t, s, ordersStream); v != 10 {
		t.Fatalf("Version after compaction: got %d, want 10", v)
	}
	next := mustAppend(t, s, ordersStream, eventstore.Exactly(10), event("b")).Events[0]
	if next.Sequence != 11 || (positioned(s) && next.Position <= stored[9].Position) {
		t.Fatalf("append after compaction: got sequence %d position %d, want 11 and a position above %d",
			next.Sequence, next.Position, stored[9].Position)
	}
	checkRetained(t, s, ordersStream, append(stored, next), 9)
}

func testCompactingBeyondTheLastEventKeepsTheLastEvent(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, ordersStream, eventstore.Any, events("a", 5)...).Events
	mustCompact(t, s, ordersStream, 100, 4)
	checkRetained(t, s, ordersStream, stored, 5)
	mustCompact(t, s, ordersStream, math.MaxUint64, 0)
	checkRetained(t, s, ordersStream, stored, 5)
	if v := mustVersion(t, s, ordersStream); v != 5 {
		t.Fatalf("Version: got %d, want 5", v)
	}
	if next := mustAppend(t, s, ordersStream, eventstore.Exactly(5), event("b")).Events[0]; next.Sequence != 6 {
		t.Fatalf("append after compacting everything: got sequence %d, want 6", next.Sequence)
	}
}

func testCompactIsIdempotent(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, ordersStream, eventstore.Any, events("a", 10)...).Events
	mustCompact(t, s, ordersStream, 6, 5)
	mustCompact(t, s, ordersStream, 6, 0)
	mustCompact(t, s, ordersStream, 3, 0)
	mustCompact(t, s, ordersStream, 0, 0)
	checkRetained(t, s, ordersStream, stored, 6)
	mustCompact(t, s, ordersStream, 8, 2)
	checkRetained(t, s, ordersStream, stored, 8)
}

func testCompactingAnUnknownStreamRemovesNothing(t *testing.T, s eventstore.Store) {
	mustCompact(t, s, "unknown", 10, 0)
	if got := mustFirst(t, s, "unknown"); got != 0 {
		t.Fatalf("First of an unknown stream: got %d, want 0", got)
	}
	if v := mustVersion(t, s, "unknown"); v != 0 {
		t.Fatalf("Version of an unknown stream after Compact: got %d, want 0", v)
	}
	first := mustAppend(t, s, "unknown", eventstore.NoStream, event("a")).Events[0]
	if first.Sequence != 1 {
		t.Fatalf("first append after Compact: got sequence %d, want 1", first.Sequence)
	}
}

func testCompactionTouchesOnlyItsStream(t *testing.T, s eventstore.Store) {
	orders := mustAppend(t, s, ordersStream, eventstore.Any, events("o", 5)...).Events
	payments := mustAppend(t, s, paymentsStream, eventstore.Any, events("p", 5)...).Events
	mustCompact(t, s, ordersStream, 4, 3)
	checkRetained(t, s, ordersStream, orders, 4)
	checkRetained(t, s, paymentsStream, payments, 1)
}

// The documented idempotency window: the ID of a compacted event is
// forgotten, the IDs of retained events still make appends idempotent.
func testIDsOfCompactedEventsAreForgottenAndTheRetainedOnesKept(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, ordersStream, eventstore.Any, events("a", 5)...).Events
	mustCompact(t, s, ordersStream, 3, 2)

	again := mustAppend(t, s, ordersStream, eventstore.Any, stored[3])
	if again.Appended != 0 || again.Events[0].Sequence != 4 {
		t.Fatalf("re-append of retained event a-4: got %d appended, sequence %d; want 0 and 4",
			again.Appended, again.Events[0].Sequence)
	}
	checkStored(t, "re-appended retained event", again.Events[0], stored[3])

	forgotten := mustAppend(t, s, ordersStream, eventstore.Any, event("a-1"))
	if forgotten.Appended != 1 || forgotten.Events[0].Sequence != 6 {
		t.Fatalf("re-append of compacted event a-1: got %d appended, sequence %d; want 1 and 6",
			forgotten.Appended, forgotten.Events[0].Sequence)
	}
}

func testSubscriptionBeforeTheCutContinuesFromTheFirstRetainedEvent(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, ordersStream, eventstore.Any, events("a", 10)...).Events
	early := subscribe(t, s, ordersStream, 2) // positioned before the cut, nothing read yet
	mustCompact(t, s, ordersStream, 7, 6)
	for _, want := range stored[6:] {
		checkStored(t, "event after the cut", mustNext(t, early), want)
	}
	// It then follows live appends.
	pending := nextAsync(testContext(t), early)
	live := mustAppend(t, s, ordersStream, eventstore.Any, event("live")).Events[0]
	r := await(t, pending)
	if r.err != nil {
		t.Fatalf("Next waiting for a live append: got error %v, want an event", r.err)
	}
	checkStored(t, "live event", r.msg, live)

	// A subscription made after the compaction from 0 starts at the first
	// retained event too.
	late := subscribe(t, s, ordersStream, 0)
	checkStored(t, "first event from 0", mustNext(t, late), stored[6])
}

// A subscription may have read ahead before a compaction: what it returns
// stays in order, without error, and holds every retained event.
func testSubscriptionReadingWhileCompactedSeesEveryRetainedEventInOrder(t *testing.T, s eventstore.Store) {
	const n = 600
	mustAppend(t, s, ordersStream, eventstore.Any, events("a", n)...)
	sub := subscribe(t, s, ordersStream, 0)
	last := mustNext(t, sub).Sequence
	mustCompact(t, s, ordersStream, 400, 399)
	for last < n {
		m := mustNext(t, sub)
		if m.Sequence <= last {
			t.Fatalf("Next after sequence %d: got sequence %d, want a later one", last, m.Sequence)
		}
		if m.Sequence > 400 && m.Sequence != last+1 {
			t.Fatalf("Next after sequence %d: got sequence %d, a retained event was skipped", last, m.Sequence)
		}
		last = m.Sequence
	}
}

func testConcurrentAppendsDuringCompactionLoseNothing(t *testing.T, s eventstore.Store) {
	const (
		appenders = 4
		perWriter = 150
		total     = appenders * perWriter
		keep      = 20
	)
	ctx := testContext(t)
	c := s.(eventstore.Compactor)
	ids := make([][]engine.Message, appenders)
	errs := make(chan error, appenders+1)
	var writing sync.WaitGroup
	for w := range appenders {
		writing.Go(func() {
			for i := range perWriter {
				res, err := s.Append(ctx, ordersStream, eventstore.Any, []engine.Message{event(fmt.Sprintf("w%d-%d", w, i))})
				if err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
				ids[w] = append(ids[w], res.Events...)
			}
		})
	}
	done := make(chan struct{})
	compacted := make(chan int, 1)
	go func() {
		removed := 0
		defer func() { compacted <- removed }()
		for {
			select {
			case <-done:
				return
			default:
			}
			v, err := s.Version(ctx, ordersStream)
			if err == nil && v > keep {
				var n int
				n, err = c.Compact(ctx, ordersStream, v-keep)
				removed += n
			}
			if err != nil {
				errs <- fmt.Errorf("compact: %w", err)
				return
			}
		}
	}()
	writing.Wait()
	close(done)
	removed := <-compacted
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	if v := mustVersion(t, s, ordersStream); v != total {
		t.Fatalf("Version: got %d, want %d", v, total)
	}
	first := mustFirst(t, s, ordersStream)
	if first != uint64(removed)+1 {
		t.Fatalf("First: got %d after %d events were removed, want %d", first, removed, removed+1)
	}
	retained := mustRead(t, s, ordersStream, 0, total+1)
	checkSequences(t, "retained", retained, first, int(total-first+1))
	bySequence := make(map[uint64]string, total)
	for _, evs := range ids {
		for _, m := range evs {
			if other, dup := bySequence[m.Sequence]; dup {
				t.Fatalf("sequence %d given to both %q and %q", m.Sequence, other, m.ID)
			}
			bySequence[m.Sequence] = m.ID
		}
	}
	if len(bySequence) != total {
		t.Fatalf("appends got %d distinct sequences, want %d", len(bySequence), total)
	}
	for _, m := range retained {
		if bySequence[m.Sequence] != m.ID {
			t.Fatalf("sequence %d: stored id %q, appended as %q", m.Sequence, m.ID, bySequence[m.Sequence])
		}
	}
}
