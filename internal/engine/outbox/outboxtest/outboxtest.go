// Package outboxtest is the conformance suite every outbox.Outbox backend
// runs, as Watermill's pub/sub tests are: a backend declares what it
// supports beyond the Outbox interface (Features) and one Run covers it.
package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

// Features says what a backend supports beyond outbox.Outbox. The
// behaviours that need a feature the backend does not declare are skipped,
// saying which; a declared feature the outbox lacks fails them.
type Features struct {
	// Durable: entries not marked dispatched outlive the outbox. Once it is
	// closed, opening its dir again finds them pending, oldest first,
	// counted against the capacity and signalled to the processor.
	Durable bool
	// HasRoom: the outbox has HasRoom(n int) bool, with which Ingest
	// refuses a request it cannot take before validating it.
	HasRoom bool
	// PendingInto: the outbox has PendingInto, with which the processor
	// reads pending entries into buffers of its own.
	PendingInto bool
}

// missing names the first feature of needs that f does not declare, "" if
// none.
func (f Features) missing(needs Features) string {
	switch {
	case needs.Durable && !f.Durable:
		return "Durable"
	case needs.HasRoom && !f.HasRoom:
		return "HasRoom"
	case needs.PendingInto && !f.PendingInto:
		return "PendingInto"
	}
	return ""
}

// Open returns an outbox on the storage in dir, holding at most capacity
// entries: an empty one the first time, and for a Durable backend, once the
// last outbox on dir is closed, what that one held. Every subtest gets a
// dir of its own. A backend that keeps nothing on disk ignores dir.
type Open func(t *testing.T, dir string, capacity int) outbox.Outbox

// NewOutbox opens the subtest's outbox (Open on the subtest's dir).
type NewOutbox func(t *testing.T, capacity int) outbox.Outbox

var behaviours = []struct {
	name  string
	needs Features
	test  func(t *testing.T, newOutbox NewOutbox)
}{
	{"BatchEnqueueKeepsOrder", Features{}, testBatchEnqueueKeepsOrder},
	{"EnqueueKeepsMessagesWhenTheCallerReusesItsSlice", Features{}, testEnqueueKeepsMessagesWhenTheCallerReusesItsSlice},
	{"EnqueuePastCapacityIsFullAndEnqueuesNothing", Features{}, testEnqueuePastCapacity},
	{"PendingIsOldestFirstAndStableUntilMarked", Features{}, testPendingIsStable},
	{"MarkDispatchedTwiceOrOutOfOrderIsHarmless", Features{}, testMarkDispatched},
	{"MarkDispatchedFreesCapacity", Features{}, testMarkDispatchedFreesCapacity},
	{"SignalAfterEnqueue", Features{}, testSignalAfterEnqueue},
	{"ConcurrentEnqueuersLoseNothing", Features{}, testConcurrentEnqueuers},
	{"CloseRejectsFurtherCalls", Features{}, testClose},
	{"HasRoomFollowsEnqueueAndMarkDispatched", Features{HasRoom: true}, testHasRoom},
	{"PendingIntoCopiesWhatPendingReturns", Features{PendingInto: true}, testPendingInto},
	{"EntriesNotMarkedSurviveReopening", Features{Durable: true}, testEntriesNotMarkedSurviveReopening},
	{"ScanVisitsEveryPendingEntryOldestFirst", Features{}, testScanVisitsEveryPendingEntryOldestFirst},
	{"ScanStopsAtTheFirstErrorOfFn", Features{}, testScanStopsAtTheFirstErrorOfFn},
	{"ScanAfterReopeningVisitsTheEntriesLeftPending", Features{Durable: true}, testScanAfterReopeningVisitsTheEntriesLeftPending},
}

// Run runs every behaviour as a subtest of t, each on storage of its own
// that it opens with open.
func Run(t *testing.T, features Features, open Open) {
	for _, b := range behaviours {
		t.Run(b.name, func(t *testing.T) {
			if f := features.missing(b.needs); f != "" {
				t.Skipf("the backend does not declare Features.%s", f)
			}
			dir := t.TempDir()
			b.test(t, func(t *testing.T, capacity int) outbox.Outbox { return open(t, dir, capacity) })
		})
	}
}

// messages returns n messages of stream whose IDs are prefix-0, prefix-1, ...
func messages(stream, prefix string, n int) []engine.Message {
	msgs := make([]engine.Message, n)
	for i := range msgs {
		msgs[i] = engine.Message{
			ID:      fmt.Sprintf("%s-%d", prefix, i),
			Name:    "Tested",
			Stream:  stream,
			Headers: map[string]string{"n": fmt.Sprint(i)},
			Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)),
		}
	}
	return msgs
}

func ids(entries []outbox.Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Message.ID
	}
	return out
}

func positions(entries []outbox.Entry) []uint64 {
	out := make([]uint64, len(entries))
	for i, e := range entries {
		out[i] = e.Position
	}
	return out
}

func msgIDs(msgs []engine.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func mustEnqueue(t *testing.T, ob outbox.Outbox, msgs []engine.Message) {
	t.Helper()
	if err := ob.Enqueue(t.Context(), msgs); err != nil {
		t.Fatalf("Enqueue(%d messages): got error %v, want nil", len(msgs), err)
	}
}

func mustPending(t *testing.T, ob outbox.Outbox, limit int) []outbox.Entry {
	t.Helper()
	entries, err := ob.Pending(t.Context(), limit)
	if err != nil {
		t.Fatalf("Pending(%d): got error %v, want nil", limit, err)
	}
	return entries
}

func mustMark(t *testing.T, ob outbox.Outbox, pos []uint64) {
	t.Helper()
	if err := ob.MarkDispatched(t.Context(), pos); err != nil {
		t.Fatalf("MarkDispatched(%v): got error %v, want nil", pos, err)
	}
}

func open(t *testing.T, newOutbox NewOutbox, capacity int) outbox.Outbox {
	t.Helper()
	ob := newOutbox(t, capacity)
	t.Cleanup(func() { _ = ob.Close() })
	return ob
}

func testBatchEnqueueKeepsOrder(t *testing.T, newOutbox NewOutbox) {
	ob := open(t, newOutbox, 100)
	first, second := messages("s", "a", 3), messages("t", "b", 2)
	mustEnqueue(t, ob, first)
	mustEnqueue(t, ob, second)

	entries := mustPending(t, ob, 100)
	want := append(msgIDs(first), msgIDs(second)...)
	if got := ids(entries); !slices.Equal(got, want) {
		t.Fatalf("Pending IDs: got %v, want %v", got, want)
	}
	pos := positions(entries)
	for i := 1; i < len(pos); i++ {
		if pos[i] <= pos[i-1] {
			t.Fatalf("positions: got %v, want strictly increasing", pos)
		}
	}
	for i, e := range entries {
		src := append(first, second...)[i]
		if e.Message.Stream != src.Stream || string(e.Message.Payload) != string(src.Payload) || e.Message.Header("n") != src.Header("n") {
			t.Errorf("entry %d: got %+v, want the enqueued %+v", i, e.Message, src)
		}
	}
	if got := ob.Len(); got != 5 {
		t.Errorf("Len: got %d, want 5", got)
	}
}

func testEnqueueKeepsMessagesWhenTheCallerReusesItsSlice(t *testing.T, newOutbox NewOutbox) {
	ob := open(t, newOutbox, 10)
	msgs := messages("s", "a", 2)
	mustEnqueue(t, ob, msgs)
	// The caller reuses its slice for the next request. Headers and
	// Payload are read-only once enqueued, so they are not changed here.
	msgs[0] = engine.Message{ID: "changed", Stream: "other"}

	entries := mustPending(t, ob, 10)
	if got := entries[0].Message; got.ID != "a-0" || got.Stream != "s" || string(got.Payload) != `{"n":0}` || got.Header("n") != "0" {
		t.Fatalf("entry after the caller reused its slice: got ID %q stream %q payload %q header %q, want a-0 s {\"n\":0} 0",
			got.ID, got.Stream, got.Payload, got.Header("n"))
	}
}

func testEnqueuePastCapacity(t *testing.T, newOutbox NewOutbox) {
	ob := open(t, newOutbox, 5)
	mustEnqueue(t, ob, messages("s", "a", 3))

	err := ob.Enqueue(t.Context(), messages("s", "b", 3))
	if !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("Enqueue past capacity: got error %v, want ErrFull", err)
	}
	if got := ob.Len(); got != 3 {
		t.Fatalf("Len after a refused Enqueue: got %d, want 3", got)
	}
	if got, want := ids(mustPending(t, ob, 10)), msgIDs(messages("s", "a", 3)); !slices.Equal(got, want) {
		t.Fatalf("Pending after a refused Enqueue: got %v, want %v", got, want)
	}
	// Exactly up to the capacity still fits.
	mustEnqueue(t, ob, messages("s", "c", 2))
	if got := ob.Len(); got != 5 {
		t.Fatalf("Len at capacity: got %d, want 5", got)
	}
}

func testPendingIsStable(t *testing.T, newOutbox NewOutbox) {
	ob := open(t, newOutbox, 100)
	msgs := messages("s", "a", 10)
	mustEnqueue(t, ob, msgs)

	first := mustPending(t, ob, 4)
	if got, want := ids(first), msgIDs(msgs[:4]); !slices.Equal(got, want) {
		t.Fatalf("Pending(4): got %v, want %v", got, want)
	}
	again := mustPending(t, ob, 4)
	if !slices.Equal(positions(again), positions(first)) {
		t.Fatalf("Pending(4) twice: got positions %v then %v, want the same", positions(first), positions(again))
	}
	if got := ob.Len(); got != 10 {
		t.Fatalf("Len after Pending: got %d, want 10 (Pending must not remove)", got)
	}
	mustMark(t, ob, positions(first))
	if got, want := ids(mustPending(t, ob, 100)), msgIDs(msgs[4:]); !slices.Equal(got, want) {
		t.Fatalf("Pending after marking the first four: got %v, want %v", got, want)
	}
	if got := mustPending(t, ob, 0); len(got) != 0 {
		t.Fatalf("Pending(0): got %d entries, want none", len(got))
	}
}

func testMarkDispatched(t *testing.T, newOutbox NewOutbox) {
	ob := open(t, newOutbox, 100)
	msgs := messages("s", "a", 6)
	mustEnqueue(t, ob, msgs)
	pos := positions(mustPending(t, ob, 6))

	// Out of order, from the middle and the end first.
	mustMark(t, ob, []uint64{pos[4], pos[2]})
	if got, want := ids(mustPending(t, ob, 100)), []string{"a-0", "a-1", "a-3", "a-5"}; !slices.Equal(got, want) {
		t.Fatalf("Pending after marking a-4 and a-2: got %v, want %v", got, want)
	}
	// Twice, plus a position the outbox never held.
	mustMark(t, ob, []uint64{pos[4], pos[2], pos[5] + 1000})
	if got := ob.Len(); got != 4 {
		t.Fatalf("Len after marking twice: got %d, want 4", got)
	}
	mustMark(t, ob, []uint64{pos[5], pos[0], pos[3], pos[1]})
	if got := ob.Len(); got != 0 {
		t.Fatalf("Len after marking all: got %d, want 0", got)
	}
	if got := mustPending(t, ob, 100); len(got) != 0 {
		t.Fatalf("Pending after marking all: got %v, want none", ids(got))
	}
	mustMark(t, ob, pos)

	// Positions keep increasing after the outbox emptied.
	mustEnqueue(t, ob, messages("s", "b", 1))
	if next := mustPending(t, ob, 1); len(next) != 1 || next[0].Position <= pos[5] {
		t.Fatalf("position after emptying: got %v, want one greater than %d", positions(next), pos[5])
	}
}

func testMarkDispatchedFreesCapacity(t *testing.T, newOutbox NewOutbox) {
	const capacity, rounds = 4, 1200
	ob := open(t, newOutbox, capacity)
	// Cycle many times the capacity through a full outbox. Each round marks
	// the newest entry (leaving a hole) and the oldest one, so a backend that
	// leaks dispatched entries or mislays live ones fails.
	mustEnqueue(t, ob, messages("s", "start", 2))
	for round := range rounds {
		mustEnqueue(t, ob, messages("s", fmt.Sprintf("r%d", round), 2))
		entries := mustPending(t, ob, capacity)
		if len(entries) != capacity {
			t.Fatalf("round %d: Pending got %d entries, want %d", round, len(entries), capacity)
		}
		mustMark(t, ob, []uint64{entries[3].Position, entries[0].Position})
		want := []string{entries[1].Message.ID, entries[2].Message.ID}
		if got := ids(mustPending(t, ob, capacity)); !slices.Equal(got, want) {
			t.Fatalf("round %d: Pending after marking the newest and oldest: got %v, want %v", round, got, want)
		}
	}
	mustMark(t, ob, positions(mustPending(t, ob, capacity)))
	if got := ob.Len(); got != 0 {
		t.Fatalf("Len at the end: got %d, want 0", got)
	}
}

func testSignalAfterEnqueue(t *testing.T, newOutbox NewOutbox) {
	ob := open(t, newOutbox, 100)
	// Drain whatever a backend may signal at start.
	select {
	case <-ob.Signal():
	default:
	}
	for i := range 3 {
		mustEnqueue(t, ob, messages("s", fmt.Sprint(i), 1))
	}
	// Several enqueues may share one signal, but at least one must be there
	// without waiting: Enqueue returned after sending it.
	select {
	case <-ob.Signal():
	default:
		t.Fatal("Signal after Enqueue: got no value, want one ready")
	}
	mustEnqueue(t, ob, messages("s", "late", 1))
	select {
	case <-ob.Signal():
	default:
		t.Fatal("Signal after an Enqueue that followed a received signal: got no value, want one ready")
	}
}

func testConcurrentEnqueuers(t *testing.T, newOutbox NewOutbox) {
	const writers, perWriter = 8, 50
	ob := open(t, newOutbox, writers*perWriter)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				msg := messages(fmt.Sprintf("s%d", w), fmt.Sprintf("w%d-%d", w, i), 1)
				if err := ob.Enqueue(context.Background(), msg); err != nil {
					t.Errorf("writer %d Enqueue %d: got error %v, want nil", w, i, err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	// A reader marks batches while the writers run.
	var marked int
	for running := true; running && marked < writers*perWriter/2; {
		select {
		case <-done:
			running = false
		default:
		}
		entries, err := ob.Pending(t.Context(), 16)
		if err != nil {
			t.Fatalf("Pending: got error %v, want nil", err)
		}
		if err := ob.MarkDispatched(t.Context(), positions(entries)); err != nil {
			t.Fatalf("MarkDispatched: got error %v, want nil", err)
		}
		marked += len(entries)
	}
	<-done

	rest := mustPending(t, ob, writers*perWriter)
	if got, want := marked+len(rest), writers*perWriter; got != want {
		t.Fatalf("entries marked plus pending: got %d, want %d", got, want)
	}
	if got := ob.Len(); got != len(rest) {
		t.Fatalf("Len: got %d, want %d", got, len(rest))
	}
	// Each writer's own messages stay in its order.
	next := make(map[string]int)
	for _, e := range rest {
		var w, i int
		if _, err := fmt.Sscanf(e.Message.ID, "w%d-%d-0", &w, &i); err != nil {
			t.Fatalf("entry ID %q: %v", e.Message.ID, err)
		}
		key := fmt.Sprint(w)
		if i < next[key] {
			t.Fatalf("writer %d: got message %d after %d, want enqueue order", w, i, next[key]-1)
		}
		next[key] = i + 1
	}
}

func testClose(t *testing.T, newOutbox NewOutbox) {
	ob := newOutbox(t, 10)
	mustEnqueue(t, ob, messages("s", "a", 1))
	if err := ob.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}
	if err := ob.Enqueue(t.Context(), messages("s", "b", 1)); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Enqueue after Close: got error %v, want ErrClosed", err)
	}
	if _, err := ob.Pending(t.Context(), 10); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Pending after Close: got error %v, want ErrClosed", err)
	}
	if err := ob.MarkDispatched(t.Context(), []uint64{1}); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("MarkDispatched after Close: got error %v, want ErrClosed", err)
	}
}

// roomChecker is the method Features.HasRoom declares.
type roomChecker interface{ HasRoom(n int) bool }

func testHasRoom(t *testing.T, newOutbox NewOutbox) {
	ob := open(t, newOutbox, 3)
	room, ok := ob.(roomChecker)
	if !ok {
		t.Fatal("the outbox has no HasRoom, yet the backend declares Features.HasRoom")
	}
	if !room.HasRoom(3) || room.HasRoom(4) {
		t.Fatalf("empty outbox of 3: got HasRoom(3)=%v HasRoom(4)=%v, want true and false", room.HasRoom(3), room.HasRoom(4))
	}
	mustEnqueue(t, ob, messages("s", "a", 2))
	if room.HasRoom(2) {
		t.Fatal("outbox of 3 holding 2: got HasRoom(2)=true, want false")
	}
	mustMark(t, ob, positions(mustPending(t, ob, 1)))
	if !room.HasRoom(2) {
		t.Fatal("outbox of 3 holding 1: got HasRoom(2)=false, want true")
	}
}

// pendingIntoer is the method Features.PendingInto declares.
type pendingIntoer interface {
	PendingInto(ctx context.Context, msgs []engine.Message, positions []uint64) (int, error)
}

func testPendingInto(t *testing.T, newOutbox NewOutbox) {
	ob := open(t, newOutbox, 10)
	into, ok := ob.(pendingIntoer)
	if !ok {
		t.Fatal("the outbox has no PendingInto, yet the backend declares Features.PendingInto")
	}
	mustEnqueue(t, ob, messages("s", "a", 5))
	mustMark(t, ob, positions(mustPending(t, ob, 5))[1:2])
	want := mustPending(t, ob, 3)
	gotMsgs, gotPositions := make([]engine.Message, 3), make([]uint64, 3)
	n, err := into.PendingInto(t.Context(), gotMsgs, gotPositions)
	if err != nil || n != len(want) {
		t.Fatalf("PendingInto: got %d, %v, want %d, nil", n, err, len(want))
	}
	for i, e := range want {
		if gotMsgs[i].ID != e.Message.ID || gotPositions[i] != e.Position {
			t.Errorf("PendingInto entry %d: got %q at %d, want %q at %d", i, gotMsgs[i].ID, gotPositions[i], e.Message.ID, e.Position)
		}
	}
	if n, err := into.PendingInto(t.Context(), nil, nil); err != nil || n != 0 {
		t.Errorf("PendingInto into no room: got %d, %v, want 0, nil", n, err)
	}
}

func testEntriesNotMarkedSurviveReopening(t *testing.T, newOutbox NewOutbox) {
	ob := open(t, newOutbox, 10)
	msgs := messages("s", "m", 3)
	mustEnqueue(t, ob, msgs)
	mustMark(t, ob, positions(mustPending(t, ob, 1)))
	if err := ob.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}

	again := open(t, newOutbox, 3)
	select {
	case <-again.Signal():
	default:
		t.Fatal("Signal of a reopened outbox with pending entries: got no value, want one ready for the processor")
	}
	pending := mustPending(t, again, 10)
	if got, want := ids(pending), msgIDs(msgs[1:]); !slices.Equal(got, want) {
		t.Fatalf("Pending after reopening: got %v, want %v", got, want)
	}
	for i, e := range pending {
		src := msgs[1+i]
		if e.Message.Stream != src.Stream || string(e.Message.Payload) != string(src.Payload) || e.Message.Header("n") != src.Header("n") {
			t.Errorf("entry %d after reopening: got %+v, want the enqueued %+v", i, e.Message, src)
		}
	}
	// The entries left over count against the capacity of the new outbox.
	if err := again.Enqueue(t.Context(), messages("s", "x", 2)); !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("Enqueue of 2 into 1 left of capacity 3: got %v, want ErrFull", err)
	}
	// New positions never reuse old ones.
	mustEnqueue(t, again, messages("s", "y", 1))
	after := mustPending(t, again, 10)
	if last, before := after[len(after)-1].Position, pending[len(pending)-1].Position; last <= before {
		t.Fatalf("position of an entry enqueued after reopening: got %d, want more than %d", last, before)
	}
}

// mustScan returns the entries Scan visits and fails the test on error or
// when an entry comes again or out of order (which also ends a scan that
// would loop).
func mustScan(t *testing.T, ob outbox.Outbox) []outbox.Entry {
	t.Helper()
	var got []outbox.Entry
	if err := ob.Scan(t.Context(), func(e outbox.Entry) error {
		if n := len(got); n > 0 && e.Position <= got[n-1].Position {
			return fmt.Errorf("visited position %d after %d, want oldest first, each once", e.Position, got[n-1].Position)
		}
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatalf("Scan: got error %v, want nil", err)
	}
	return got
}

// keyedMessages returns messages as messages does, each of key k<i%7> with
// a version, as ingest enqueues them.
func keyedMessages(stream, prefix string, n int) []engine.Message {
	msgs := messages(stream, prefix, n)
	for i := range msgs {
		msgs[i].Key, msgs[i].Version = fmt.Sprintf("k%d", i%7), uint64(i/7+1)
	}
	return msgs
}

// checkScanned fails unless got are the entries of want, in order, with
// their positions, keys and versions.
func checkScanned(t *testing.T, what string, got, want []outbox.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d entries, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Position != w.Position || g.Message.ID != w.Message.ID || g.Message.Key != w.Message.Key ||
			g.Message.Version != w.Message.Version || string(g.Message.Payload) != string(w.Message.Payload) {
			t.Fatalf("%s: entry %d is %q at %d (key %q version %d), want %q at %d (key %q version %d)", what, i,
				g.Message.ID, g.Position, g.Message.Key, g.Message.Version, w.Message.ID, w.Position, w.Message.Key, w.Message.Version)
		}
	}
}

// markScattered marks the first ten entries and every third after them,
// leaving holes across several of Scan's pages.
func markScattered(t *testing.T, ob outbox.Outbox, entries []outbox.Entry) {
	t.Helper()
	var marked []uint64
	for i, e := range entries {
		if i < 10 || i%3 == 0 {
			marked = append(marked, e.Position)
		}
	}
	mustMark(t, ob, marked)
}

func testScanVisitsEveryPendingEntryOldestFirst(t *testing.T, newOutbox NewOutbox) {
	// More than two of Scan's pages, so that it pages across holes.
	const n = 2*outbox.ScanPage + 500
	ob := open(t, newOutbox, n)
	if got := mustScan(t, ob); len(got) != 0 {
		t.Fatalf("Scan of an empty outbox: got %d entries, want none", len(got))
	}
	mustEnqueue(t, ob, keyedMessages("s", "a", n))
	markScattered(t, ob, mustPending(t, ob, n))
	want := mustPending(t, ob, n)
	checkScanned(t, "Scan", mustScan(t, ob), want)

	// fn may call the outbox: Scan holds no lock while it runs.
	visited := 0
	err := ob.Scan(t.Context(), func(e outbox.Entry) error {
		visited++
		if visited%outbox.ScanPage == 1 {
			return ob.MarkDispatched(t.Context(), []uint64{e.Position})
		}
		return nil
	})
	if err != nil || visited != len(want) {
		t.Fatalf("Scan whose fn marks entries: got %d visited, %v, want %d, nil", visited, err, len(want))
	}
	if got := ob.Len(); got != len(want)-(len(want)+outbox.ScanPage-1)/outbox.ScanPage {
		t.Fatalf("Len after fn marked one entry per page: got %d, want %d", got, len(want)-(len(want)+outbox.ScanPage-1)/outbox.ScanPage)
	}

	if err := ob.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	if err := ob.Scan(t.Context(), func(outbox.Entry) error { return nil }); !errors.Is(err, outbox.ErrClosed) {
		t.Fatalf("Scan after Close: got %v, want ErrClosed", err)
	}
}

func testScanStopsAtTheFirstErrorOfFn(t *testing.T, newOutbox NewOutbox) {
	ob := open(t, newOutbox, 100)
	mustEnqueue(t, ob, messages("s", "a", 10))
	stop := errors.New("stop")
	var visited []string
	err := ob.Scan(t.Context(), func(e outbox.Entry) error {
		visited = append(visited, e.Message.ID)
		if len(visited) == 4 {
			return fmt.Errorf("entry %q: %w", e.Message.ID, stop)
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Scan: got error %v, want fn's", err)
	}
	if want := msgIDs(messages("s", "a", 4)); !slices.Equal(visited, want) {
		t.Fatalf("Scan visited %v, want %v and no more", visited, want)
	}
	if got := ob.Len(); got != 10 {
		t.Fatalf("Len after Scan: got %d, want 10 (Scan must not remove)", got)
	}
}

func testScanAfterReopeningVisitsTheEntriesLeftPending(t *testing.T, newOutbox NewOutbox) {
	const n = outbox.ScanPage + 100
	ob := open(t, newOutbox, n)
	mustEnqueue(t, ob, keyedMessages("s", "a", n))
	markScattered(t, ob, mustPending(t, ob, n))
	want := mustPending(t, ob, n)
	if err := ob.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}

	again := open(t, newOutbox, n)
	checkScanned(t, "Scan after reopening", mustScan(t, again), want)
}
