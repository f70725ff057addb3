package versions_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

func TestEachKeyCountsItsOwnVersionsFromOne(t *testing.T) {
	s := newStoreDouble()
	table := versions.New(s)
	wantVersions(t, "first batch of a", mustAccept(t, table, s, versions.Any, events("a", "a1", "a2")), 1, 2)
	wantVersions(t, "first of b", mustAccept(t, table, s, versions.Any, events("b", "b1")), 1)
	s.store(t, table)
	wantVersions(t, "a after its events were stored", mustAccept(t, table, s, versions.Any, events("a", "a3")), 3)
	wantVersions(t, "unkeyed", mustAccept(t, table, s, versions.Any, events("", "u1")), 0)
	s.store(t, table)
	wantNothingReserved(t, table)
}

func TestAConditionThatDoesNotHoldAcceptsNothingAndNamesTheCurrentVersion(t *testing.T) {
	s := newStoreDouble()
	table := versions.New(s)
	mustAccept(t, table, s, versions.NoEvents, events("a", "a1", "a2"))

	for name, expect := range map[string]versions.Expect{
		"If-Match stale":     versions.Exactly(1),
		"If-Match ahead":     versions.Exactly(3),
		"If-None-Match: *":   versions.NoEvents,
		"If-Match on a zero": versions.Exactly(0),
	} {
		_, err := accept(t, table, s, expect, events("a", "x-"+name))
		wantConflict(t, err, 2)
	}
	_, err := accept(t, table, s, versions.Exists, events("new", "n1"))
	wantConflict(t, err, 0)
	if n := len(s.outbox); n != 2 {
		t.Fatalf("outbox holds %d events, want only the first request's 2", n)
	}
	wantVersions(t, "If-Match: \"2\"", mustAccept(t, table, s, versions.Exactly(2), events("a", "a3")), 3)
	wantVersions(t, "If-Match: *", mustAccept(t, table, s, versions.Exists, events("a", "a4")), 4)
	wantVersions(t, "If-Match: \"0\" on a new key", mustAccept(t, table, s, versions.Exactly(0), events("b", "b1")), 1)
}

func TestAConditionNeedsOneKey(t *testing.T) {
	s := newStoreDouble()
	table := versions.New(s)
	mixed := append(events("a", "a1"), events("b", "b1")...)
	for _, evs := range [][]engine.Message{mixed, events("", "u1")} {
		if _, err := accept(t, table, s, versions.Exactly(0), evs); !errors.Is(err, versions.ErrConditionNeedsOneKey) {
			t.Fatalf("condition on %v: got %v, want ErrConditionNeedsOneKey", evs, err)
		}
	}
	views := mustAccept(t, table, s, versions.Any, mixed)
	wantVersions(t, "mixed keys without a condition", views, 1, 1)
}

func TestAFailedEnqueueGivesTheVersionsAndIDsBack(t *testing.T) {
	s := newStoreDouble()
	table := versions.New(s)
	full := errors.New("outbox full")
	_, err := table.Accept(context.Background(),
		versions.Request{Stream: "orders", Events: events("a", "a1", "a2")},
		func([]engine.Message) error { return full })
	if !errors.Is(err, full) {
		t.Fatalf("got %v, want the enqueue's error", err)
	}
	views := mustAccept(t, table, s, versions.NoEvents, events("a", "a1"))
	wantVersions(t, "retry after the failure", views, 1)
}

func TestARepeatedIDAnswersTheOriginalEventAndTakesNoVersion(t *testing.T) {
	s := newStoreDouble()
	table := versions.New(s)
	mustAccept(t, table, s, versions.Any, events("a", "a1", "a2"))
	mustAccept(t, table, s, versions.Any, events("", "u1"))
	s.store(t, table)

	// Another path, a condition that would fail: the original wins.
	views := mustAccept(t, table, s, versions.Exactly(7), events("b", "a2"))
	if views[0].Key != "a" || views[0].Version != 2 {
		t.Fatalf("repeat of a2 answered key %q version %d, want a, 2", views[0].Key, views[0].Version)
	}
	views = mustAccept(t, table, s, versions.Any, events("b", "u1"))
	if views[0].Key != "" || views[0].Version != 0 {
		t.Fatalf("repeat of unkeyed u1 answered key %q version %d, want none", views[0].Key, views[0].Version)
	}
	wantVersions(t, "b's first real event", mustAccept(t, table, s, versions.Any, events("b", "b1")), 1)

	views = mustAccept(t, table, s, versions.Any, events("c", "c1", "c1", "a1", "c2"))
	wantVersions(t, "a batch repeating an ID of its own and an older one", views, 1, 1, 1, 2)
	if views[2].Key != "a" {
		t.Fatalf("a1 inside a batch for c answered key %q, want a", views[2].Key)
	}
	views = mustAccept(t, table, s, versions.Any, events("d", "a1", "a1"))
	wantVersions(t, "a batch of nothing but repeats", views, 1, 1)
	s.store(t, table)
	wantNothingReserved(t, table)
}

// A repeat of an event still in the outbox (here: of an unkeyed one, which
// would otherwise take a version the store then drops) waits until the
// store has the event, and then answers it.
func TestARepeatOfAnEventStillInTheOutboxIsAnsweredOnceItIsStored(t *testing.T) {
	s := newStoreDouble()
	table := versions.New(s)
	mustAccept(t, table, s, versions.Any, events("", "u1"))
	answered := make(chan []engine.Message, 1)
	go func() { answered <- mustAccept(t, table, s, versions.Any, events("a", "u1")) }()
	select {
	case v := <-answered:
		t.Fatalf("the repeat answered %+v while the original was in the outbox", v)
	case <-time.After(20 * time.Millisecond):
	}
	s.store(t, table)
	if v := <-answered; v[0].Key != "" || v[0].Version != 0 || v[0].ID != "u1" {
		t.Fatalf("the repeat answered %+v, want the unkeyed u1", v[0])
	}
	wantVersions(t, "a's first event", mustAccept(t, table, s, versions.Any, events("a", "a1")), 1)
	s.store(t, table)
	wantNothingReserved(t, table)
}

func TestTheSameNewIDInTwoRequestsAtOnceIsAcceptedOnce(t *testing.T) {
	s := newStoreDouble()
	table := versions.New(s)
	entered := make(chan struct{})
	release := make(chan struct{})
	first := make(chan []engine.Message, 1)
	go func() {
		views, err := table.Accept(context.Background(), versions.Request{Stream: "orders", Events: events("a", "same")},
			func(msgs []engine.Message) error {
				close(entered)
				<-release // the outbox's fdatasync takes a while
				return s.enqueue(msgs)
			})
		if err != nil {
			t.Error(err)
		}
		first <- views
	}()
	<-entered
	second := make(chan []engine.Message, 1)
	go func() { second <- mustAccept(t, table, s, versions.Any, events("b", "same")) }()
	select {
	case v := <-second:
		t.Fatalf("the second request answered %+v before the first was decided", v)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	a := <-first
	s.store(t, table) // the second waits for the store to have it
	b := <-second
	if a[0].Key != "a" || a[0].Version != 1 || b[0].Key != "a" || b[0].Version != 1 {
		t.Fatalf("first %+v, second %+v; want both key a version 1", a[0], b[0])
	}
	s.store(t, table)
	if n := len(s.byKey[[2]string{"orders", "a"}]); n != 1 || len(s.outbox) != 0 {
		t.Fatalf("key a holds %d events (%d more in the outbox), want 1", n, len(s.outbox))
	}
}

func TestReadKeyIncludesAcceptedEventsTheStoreDoesNotHaveYet(t *testing.T) {
	s := newStoreDouble()
	table := versions.New(s)
	mustAccept(t, table, s, versions.Any, events("a", "a1", "a2"))
	s.store(t, table)
	mustAccept(t, table, s, versions.Any, events("a", "a3", "a4"))

	for _, tt := range []struct {
		after   uint64
		limit   int
		wantIDs string
	}{
		{0, 100, "a1 a2 a3 a4"},
		{1, 2, "a2 a3"},
		{2, 100, "a3 a4"},
		{4, 100, ""},
		{9, 100, ""},
	} {
		evs, version, err := table.ReadKey(context.Background(), "orders", "a", tt.after, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(ids(evs), " "); got != tt.wantIDs || version != 4 {
			t.Fatalf("after %d limit %d: %q at version %d, want %q at 4", tt.after, tt.limit, got, version, tt.wantIDs)
		}
	}
	s.store(t, table)
	evs, version, _ := table.ReadKey(context.Background(), "orders", "a", 0, 100)
	if got := strings.Join(ids(evs), " "); got != "a1 a2 a3 a4" || version != 4 {
		t.Fatalf("once stored: %q at version %d", got, version)
	}
	if _, v, _ := table.ReadKey(context.Background(), "orders", "nobody", 0, 10); v != 0 {
		t.Fatalf("a key without events is at version %d, want 0", v)
	}
}

func TestRestoredEventsKeepTheirVersionsAndIDs(t *testing.T) {
	s := newStoreDouble()
	before := versions.New(s)
	mustAccept(t, before, s, versions.Any, events("a", "a1"))
	s.store(t, before)
	mustAccept(t, before, s, versions.Any, events("a", "a2", "a3"))

	// A restart: a new table, the outbox's entries handed back.
	after := versions.New(s)
	after.Restore(s.outbox)
	_, err := accept(t, after, s, versions.Exactly(1), events("a", "a4"))
	wantConflict(t, err, 3)
	wantVersions(t, "next", mustAccept(t, after, s, versions.Exactly(3), events("a", "a4")), 4)
	answered := make(chan []engine.Message, 1)
	go func() { answered <- mustAccept(t, after, s, versions.Any, events("x", "a3")) }()
	s.store(t, after)
	if views := <-answered; views[0].Key != "a" || views[0].Version != 3 {
		t.Fatalf("repeat of a restored event answered %+v", views[0])
	}
	wantNothingReserved(t, after)
}

func TestAWaitForAKeyEndsWithItsContext(t *testing.T) {
	s := newStoreDouble()
	table := versions.New(s)
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = table.Accept(context.Background(), versions.Request{Stream: "orders", Events: events("a", "slow")},
			func(msgs []engine.Message) error { close(entered); <-release; return s.enqueue(msgs) })
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := table.Accept(ctx, versions.Request{Stream: "orders", Events: events("a", "waits")}, s.enqueue)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's end", err)
	}
	close(release)
	<-done
	wantVersions(t, "after the timed-out wait", mustAccept(t, table, s, versions.Any, events("a", "next")), 2)
}

// The race of the issue: clients read a key's version and append with
// If-Match until each has its share of successes; meanwhile the processor
// stores what was accepted.
func TestConcurrentConditionalAppendsToOneKeyAreLinearizable(t *testing.T) {
	const clients, perClient = 32, 20
	s := newStoreDouble()
	table := versions.New(s)
	ctx := context.Background()
	stop := make(chan struct{})
	processorDone := make(chan struct{})
	go func() {
		defer close(processorDone)
		for {
			select {
			case <-stop:
				return
			default:
				s.store(t, table)
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	var mu sync.Mutex
	won := map[uint64]string{}
	conflicts := 0
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for n := 0; n < perClient; {
				v, err := table.KeyVersion(ctx, "orders", "hot")
				if err != nil {
					t.Error(err)
					return
				}
				id := fmt.Sprintf("c%d-%d-%d", c, n, v)
				views, err := table.Accept(ctx, versions.Request{Stream: "orders", Events: events("hot", id), Expect: versions.Exactly(v)}, s.enqueue)
				mu.Lock()
				switch {
				case err == nil:
					if prior, dup := won[views[0].Version]; dup {
						t.Errorf("version %d given to %s and %s", views[0].Version, prior, id)
					}
					won[views[0].Version] = id
					n++
				case errors.Is(err, versions.ErrVersionConflict):
					conflicts++
				default:
					t.Error(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	<-processorDone
	s.store(t, table)
	if len(won) != clients*perClient {
		t.Fatalf("%d successes, want %d", len(won), clients*perClient)
	}
	for v := uint64(1); v <= clients*perClient; v++ {
		if _, ok := won[v]; !ok {
			t.Fatalf("version %d was never given: a gap", v)
		}
	}
	if v, _ := s.KeyVersion(ctx, "orders", "hot"); v != clients*perClient {
		t.Fatalf("the store ends at version %d, want %d", v, clients*perClient)
	}
	wantNothingReserved(t, table)
	t.Logf("%d conflicts on the way", conflicts)
}

func wantNothingReserved(t *testing.T, table *versions.Table) {
	t.Helper()
	if keys, ids := table.Reserved(); keys != 0 || ids != 0 {
		t.Fatalf("with everything stored the table still holds %d keys and %d IDs", keys, ids)
	}
}

// The processor may store an event before Accept, back from the enqueue,
// has recorded it: the table must still end up holding nothing for it.
func TestEventsStoredBeforeTheirAcceptIsRecordedLeaveNothingBehind(t *testing.T) {
	s := newStoreDouble()
	table := versions.New(s)
	quick := func(msgs []engine.Message) error {
		_ = s.enqueue(msgs)
		s.store(t, table)
		return nil
	}
	for i, evs := range [][]engine.Message{events("a", "a1", "a2"), events("", "u1"), events("a", "a3")} {
		if _, err := table.Accept(context.Background(), versions.Request{Stream: "orders", Events: evs}, quick); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	wantNothingReserved(t, table)
	if v, _ := table.KeyVersion(context.Background(), "orders", "a"); v != 3 {
		t.Fatalf("key a at version %d, want 3", v)
	}
}

func TestKeysFollowTheContractsRules(t *testing.T) {
	for _, ok := range []string{"order-42", "a", "ü-ñ", "with space", "a%2Fb", strings.Repeat("k", 256), "...", ".a"} {
		if err := versions.ValidateKey(ok); err != nil {
			t.Errorf("ValidateKey(%q): %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", strings.Repeat("k", 257), "tab\there", "nl\n", "del\x7f", "\x80bad", "c1\u0085"} {
		if err := versions.ValidateKey(bad); err == nil {
			t.Errorf("ValidateKey(%q): nil, want an error", bad)
		}
	}
}

// manyLookups is the store double answering a batch's IDs in one call, as
// the disk store does.
type manyLookups struct {
	*storeDouble
	calls, ids int
}

func (m *manyLookups) LookupMany(ctx context.Context, stream string, ids []string) (map[string]engine.Message, error) {
	m.calls++
	m.ids += len(ids)
	found := map[string]engine.Message{}
	for _, id := range ids {
		if e, ok, _ := m.Lookup(ctx, stream, id); ok {
			found[id] = e
		}
	}
	return found, nil
}

func TestABatchOfIDsIsLookedUpInOneCallWhereTheStoreCan(t *testing.T) {
	s := &manyLookups{storeDouble: newStoreDouble()}
	table := versions.New(s)
	mustAccept(t, table, s.storeDouble, versions.Any, events("a", "a1", "a2"))
	s.store(t, table)
	s.calls, s.ids = 0, 0
	views, err := table.Accept(context.Background(),
		versions.Request{Stream: "orders", Events: events("a", "a2", "a3", "a1", "a4")}, s.enqueue)
	if err != nil {
		t.Fatal(err)
	}
	wantVersions(t, "two repeats and two new events", views, 2, 3, 1, 4)
	if s.calls != 1 || s.ids != 4 {
		t.Fatalf("%d LookupMany calls for %d ids, want 1 for 4", s.calls, s.ids)
	}
	s.store(t, table)
	wantNothingReserved(t, table)
}
