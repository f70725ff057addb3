package reactor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// gate is a handler that holds each event until the test releases its
// sequence, and records how many ran at once.
type gate struct {
	mu       sync.Mutex
	open     map[uint64]chan struct{}
	order    []uint64
	running  atomic.Int32
	maxSeen  atomic.Int32
	finished atomic.Int32
}

func newGate() *gate { return &gate{open: map[uint64]chan struct{}{}} }

func (g *gate) ch(seq uint64) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.open[seq]
	if !ok {
		c = make(chan struct{})
		g.open[seq] = c
	}
	return c
}

func (g *gate) release(seqs ...uint64) {
	for _, s := range seqs {
		close(g.ch(s))
	}
}

func (g *gate) Handle(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
	n := g.running.Add(1)
	defer g.running.Add(-1)
	for {
		seen := g.maxSeen.Load()
		if n <= seen || g.maxSeen.CompareAndSwap(seen, n) {
			break
		}
	}
	select {
	case <-g.ch(msg.Sequence):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	g.mu.Lock()
	g.order = append(g.order, msg.Sequence)
	g.mu.Unlock()
	g.finished.Add(1)
	return nil, nil
}

func newTestReactor(t *testing.T, ordering Ordering, maxInFlight int, h engine.Handler) (*Reactor, readmodel.Store) {
	t.Helper()
	store := readmodel.NewMemory()
	r, err := New(Config{Name: "r", Checkpoints: store, CheckpointName: "reactor:r", Ordering: ordering, MaxInFlight: maxInFlight}, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, store
}

func accept(t *testing.T, r *Reactor, msgs ...engine.Message) {
	t.Helper()
	for _, m := range msgs {
		if _, err := r.Handle(context.Background(), m); err != nil {
			t.Fatalf("Handle(%d): %v", m.Sequence, err)
		}
	}
}

func ev(seq uint64, key string) engine.Message {
	return engine.Message{ID: fmt.Sprint(seq), Stream: "s", Sequence: seq, Key: key}
}

func storedCheckpoint(t *testing.T, store readmodel.Store) uint64 {
	t.Helper()
	cp, err := store.Checkpoint(context.Background(), "reactor:r")
	if err != nil {
		t.Fatal(err)
	}
	return cp["s"]
}

func TestCheckpointIsTheLowestSequenceNotDone(t *testing.T) {
	g := newGate()
	r, store := newTestReactor(t, KeyOrdered, 16, g)
	accept(t, r, ev(1, "a"), ev(2, "b"), ev(3, "c"))
	g.release(2, 3)
	enginetest.Eventually(t, "events 2 and 3 done", func() bool { return g.finished.Load() == 2 })
	if cp := r.Stats().Checkpoint["s"]; cp != 0 {
		t.Fatalf("checkpoint %d with event 1 in flight, want 0", cp)
	}
	g.release(1)
	enginetest.Eventually(t, "checkpoint stored at 3", func() bool { return storedCheckpoint(t, store) == 3 })
}

func TestOrderedDeliversOneAtATimeInSequence(t *testing.T) {
	g := newGate()
	r, _ := newTestReactor(t, Ordered, 16, g)
	accept(t, r, ev(1, "a"), ev(2, "b"), ev(3, "c"))
	g.release(3, 2, 1)
	enginetest.Eventually(t, "3 done", func() bool { return g.finished.Load() == 3 })
	if g.maxSeen.Load() != 1 || fmt.Sprint(g.order) != "[1 2 3]" {
		t.Fatalf("ran %d at once, in order %v; want 1 at a time, 1 2 3", g.maxSeen.Load(), g.order)
	}
}

func TestKeyOrderedKeepsUnkeyedEventsInOneLane(t *testing.T) {
	g := newGate()
	r, _ := newTestReactor(t, KeyOrdered, 16, g)
	accept(t, r, ev(1, ""), ev(2, ""), ev(3, "k"))
	g.release(2, 3)
	enginetest.Eventually(t, "keyed event 3 done", func() bool { return g.finished.Load() == 1 })
	time.Sleep(20 * time.Millisecond) // event 2 is released but must wait for 1
	if g.finished.Load() != 1 {
		t.Fatalf("unkeyed event 2 ran before event 1")
	}
	g.release(1)
	enginetest.Eventually(t, "3 done", func() bool { return g.finished.Load() == 3 })
	if fmt.Sprint(g.order) != "[3 1 2]" {
		t.Fatalf("order %v, want [3 1 2]", g.order)
	}
}

func TestUnorderedBoundsTheEventsInFlightAndHandleTakesNoMoreThanTheWindow(t *testing.T) {
	g := newGate()
	r, _ := newTestReactor(t, Unordered, 4, g)
	n := uint64(r.window + 6)
	var handed atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i <= n; i++ {
			if _, err := r.Handle(context.Background(), ev(i, "k")); err != nil {
				t.Errorf("Handle: %v", err)
			}
			handed.Store(i)
		}
	}()
	enginetest.Eventually(t, "4 running and the window full", func() bool {
		return g.running.Load() == 4 && handed.Load() == uint64(r.window)
	})
	select {
	case <-done:
		t.Fatalf("Handle took all %d events with a window of %d and none done", n, r.window)
	case <-time.After(20 * time.Millisecond):
	}
	if got := g.running.Load(); got != 4 {
		t.Fatalf("%d running with the window full, want 4", got)
	}
	for i := uint64(1); i <= n; i++ {
		g.release(i)
	}
	<-done
	enginetest.Eventually(t, "all done", func() bool { return uint64(g.finished.Load()) == n })
	if g.maxSeen.Load() != 4 {
		t.Fatalf("%d ran at once, want 4", g.maxSeen.Load())
	}
}

func TestCloseLeavesUndoneEventsForTheNextReactor(t *testing.T) {
	g := newGate()
	store := readmodel.NewMemory()
	r, err := New(Config{Name: "r", Checkpoints: store, CheckpointName: "reactor:r"}, g)
	if err != nil {
		t.Fatal(err)
	}
	accept(t, r, ev(1, "a"), ev(2, "b"))
	g.release(1)
	enginetest.Eventually(t, "event 1 done", func() bool { return g.finished.Load() == 1 })
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	next, err := New(Config{Name: "r", Checkpoints: store, CheckpointName: "reactor:r"}, g)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = next.Close() }()
	pos, err := next.Position(context.Background(), "s")
	if err != nil || pos != 1 {
		t.Fatalf("the next reactor starts after %d (%v), want 1", pos, err)
	}
}

func TestCheckpointOfAStreamIsNotItsPositionWhileEventsAreInFlight(t *testing.T) {
	g := newGate()
	r, _ := newTestReactor(t, KeyOrdered, 16, g)
	ctx := context.Background()
	if cp, err := r.Checkpoint(ctx, "s"); err != nil || cp != 0 {
		t.Fatalf("Checkpoint before any event = %d, %v; want 0", cp, err)
	}
	accept(t, r, ev(1, "a"), ev(2, "b"), ev(3, "c"))
	pos, err := r.Position(ctx, "s")
	if err != nil || pos != 3 {
		t.Fatalf("Position = %d, %v; want 3 (every event handed)", pos, err)
	}
	if cp, err := r.Checkpoint(ctx, "s"); err != nil || cp != 0 {
		t.Fatalf("Checkpoint with three events in flight = %d, %v; want 0", cp, err)
	}
	g.release(1, 2, 3)
	enginetest.Eventually(t, "checkpoint at 3", func() bool {
		cp, err := r.Checkpoint(ctx, "s")
		return err == nil && cp == 3
	})
}

// recorder records what it delivers; each delivery may call check first.
type recorder struct {
	mu    sync.Mutex
	byKey map[string][]uint64
	all   []uint64
	check func()
}

func (rec *recorder) Handle(_ context.Context, msg engine.Message) ([]engine.Message, error) {
	if rec.check != nil {
		rec.check()
	}
	if msg.Sequence%7 == 0 {
		time.Sleep(50 * time.Microsecond) // lanes finish out of step
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.byKey[msg.Key] = append(rec.byKey[msg.Key], msg.Sequence)
	rec.all = append(rec.all, msg.Sequence)
	return nil, nil
}

func (rec *recorder) done() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.all)
}

// Lanes that run empty are reused for the next keys: each key's events
// still arrive in order, however often its lane is retired and another
// key's taken.
func TestKeyOrderedKeepsEachKeysOrderAcrossReusedLanes(t *testing.T) {
	rec := &recorder{byKey: map[string][]uint64{}}
	r, _ := newTestReactor(t, KeyOrdered, 4, rec)
	const n = 2000
	for i := uint64(1); i <= n; i++ {
		accept(t, r, ev(i, fmt.Sprint("k", i%5)))
	}
	enginetest.Eventually(t, "every event delivered", func() bool { return rec.done() == n })
	for key, seqs := range rec.byKey {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("key %s: %d delivered after %d", key, seqs[i], seqs[i-1])
			}
		}
	}
	if cp := r.Stats().Checkpoint["s"]; cp != n {
		t.Fatalf("checkpoint %d, want %d", cp, n)
	}
}

// An Ordered lane never runs empty under steady load: it reuses the slots
// of the events it delivered instead of growing with every event.
func TestAnOrderedLaneThatNeverRunsEmptyStaysWithinTheWindow(t *testing.T) {
	rec := &recorder{byKey: map[string][]uint64{}}
	r, _ := newTestReactor(t, Ordered, 1, rec)
	var largest atomic.Int64
	rec.check = func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if l := r.lanes[laneID{stream: "s"}]; l != nil && int64(cap(l.queue)) > largest.Load() {
			largest.Store(int64(cap(l.queue)))
		}
	}
	n := uint64(50 * r.window)
	for i := uint64(1); i <= n; i++ {
		accept(t, r, ev(i, ""))
	}
	enginetest.Eventually(t, "every event delivered", func() bool { return rec.done() == int(n) })
	for i, seq := range rec.all {
		if seq != uint64(i+1) {
			t.Fatalf("delivery %d was event %d, want %d", i, seq, i+1)
		}
	}
	if got := largest.Load(); got > int64(2*r.window) {
		t.Fatalf("the lane's queue grew to %d slots, want at most %d (twice the window)", got, 2*r.window)
	}
}
