package router_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/router"
)

func TestReplacingOnlyTheHandlerSwapsBetweenMessagesWithoutLossOrRepeat(t *testing.T) {
	const n = 400
	streams := []string{"a", "b"}
	h := running(t, nil)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: a blocked writer returns on it
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The old handler holds event a/n/2 while the new one is added, so the
	// swap happens with a message in hand and more queued behind it.
	inHand := make(chan struct{})
	release := make(chan struct{})
	oldRec, newRec := newRecorder(), newRecorder()
	old := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		if msg.Stream == "a" && msg.Sequence == n/2 {
			close(inHand)
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return oldRec.Handle(ctx, msg)
	})
	h.add(t, router.Route{Name: "p", Streams: streams, Handler: old, Start: fromStart})

	for _, s := range streams {
		wg.Go(func() {
			for range n {
				if _, err := h.emitNew(ctx, s, 1); err != nil {
					if ctx.Err() == nil {
						t.Errorf("writer of %s: %v", s, err)
					}
					return
				}
			}
		})
	}

	receive(t, "event a/n/2 in hand", inHand)
	// Same streams in another order, same (default) capacities.
	h.add(t, router.Route{Name: "p", Streams: []string{"b", "a"}, Handler: newRec, Start: fromStart})
	close(release)

	total := func(s string) int { return oldRec.count(s) + newRec.count(s) }
	enginetest.Eventually(t, "every event of both streams", func() bool { return total("a") >= n && total("b") >= n })
	wg.Wait()

	for _, s := range streams {
		before, after := oldRec.seqs(s), newRec.seqs(s)
		// Per stream, the old handler saw a prefix and the new one the rest.
		checkSeqs(t, "stream "+s+" (old then new handler)", append(before, after...), seqRange(1, n))
	}
	checkSeqs(t, "stream a by the old handler", oldRec.seqs("a"), seqRange(1, n/2))
	if newRec.count("a") == 0 {
		t.Error("the new handler saw nothing of stream a, want the events after the one in hand")
	}
}

func TestChangingStreamsRestartsConsumersFromStart(t *testing.T) {
	tests := []struct {
		name string
		next router.Route // Name, Handler and Start are filled in
		// wantReplay: the old consumers stop after the message in hand and
		// the new handler sees stream a from 1 again; otherwise Add only
		// swaps the handler, at once, and nothing is replayed.
		wantReplay bool
		wantB      []uint64
	}{
		{name: "a stream is added", next: router.Route{Streams: []string{"a", "b"}}, wantReplay: true, wantB: seqRange(1, 2)},
		{name: "a capacity changes", next: router.Route{Streams: []string{"a"}, Capacity: map[string]int{"a": 5}}, wantReplay: true},
		{name: "only the handler changes", next: router.Route{Streams: []string{"a"}, Capacity: map[string]int{"a": router.DefaultCapacity}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := running(t, nil)
			var replaced atomic.Bool
			inHand, stopping := make(chan struct{}), make(chan struct{})
			release := make(chan struct{})
			releaseOnce := sync.OnceFunc(func() { close(release) })
			defer releaseOnce() // a failed test must not leave the handler blocked
			oldRec := newRecorder()
			old := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
				if replaced.Load() {
					t.Errorf("old handler got %s/%d after Add replaced it", msg.Stream, msg.Sequence)
				}
				if msg.Sequence == 3 {
					close(inHand)
					if tt.wantReplay {
						<-ctx.Done() // Add stops the old consumers
						close(stopping)
					}
					<-release
				}
				return oldRec.Handle(ctx, msg)
			})
			h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: old, Start: fromStart})
			h.emit(t, "a", 3)
			h.emit(t, "b", 2)
			receive(t, "event a/3 in hand", inHand)

			newRec := newRecorder()
			next := tt.next
			next.Name, next.Handler, next.Start = "p", newRec, fromStart
			added := make(chan error, 1)
			go func() { added <- h.router.Add(next) }()
			if tt.wantReplay {
				receive(t, "Add to stop the old consumers", stopping)
				select {
				case err := <-added:
					t.Fatalf("Add returned (err %v) while the old handler held event a/3, want it to wait", err)
				default:
				}
				releaseOnce()
			}
			if err := receive(t, "Add to return", added); err != nil {
				t.Fatalf("Add: %v", err)
			}
			if tt.wantReplay {
				replaced.Store(true)
			}
			releaseOnce()

			h.emit(t, "a", 1)
			enginetest.Eventually(t, "event a/4", func() bool { return slices.Contains(newRec.seqs("a"), 4) })
			enginetest.Eventually(t, "stream b", func() bool { return newRec.count("b") == len(tt.wantB) })

			wantA := seqRange(4, 4)
			if tt.wantReplay {
				wantA = seqRange(1, 4)
			}
			checkSeqs(t, "stream a by the new handler", newRec.seqs("a"), wantA)
			checkSeqs(t, "stream b by the new handler", newRec.seqs("b"), tt.wantB)
			checkSeqs(t, "stream a by the old handler", oldRec.seqs("a"), seqRange(1, 3))
		})
	}
}

func TestRemoveStopsTheRouteAfterTheMessageInHand(t *testing.T) {
	h := running(t, nil)
	inHand := make(chan struct{})
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // a failed test must not leave the handler blocked
	var handlerCtxDone atomic.Bool
	rec := newRecorder()
	handler := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		if msg.Sequence == 1 {
			close(inHand)
			<-release
			handlerCtxDone.Store(ctx.Err() != nil)
		}
		return rec.Handle(ctx, msg)
	})
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: handler, Start: fromStart})
	h.add(t, router.Route{Name: "other", Streams: []string{"a"}, Handler: newRecorder(), Start: fromStart})
	h.emit(t, "a", 1)
	receive(t, "event 1 in hand", inHand)

	removed := make(chan struct{})
	go func() {
		h.router.Remove("p")
		close(removed)
	}()
	// Remove cancels the route's context; the handler still finishes.
	enginetest.Eventually(t, "the route to go", func() bool { return !slices.Contains(h.router.Names(), "p") })
	select {
	case <-removed:
		t.Fatal("Remove returned while the handler still held event 1, want it to wait")
	default:
	}
	releaseOnce()
	receive(t, "Remove to return after the message in hand", removed)

	checkSeqs(t, "removed route", rec.seqs("a"), seqRange(1, 1))
	if !handlerCtxDone.Load() {
		t.Error("the handler's context was still live after Remove, want it cancelled")
	}
	if got := h.broker.Subscribers("a"); got != 1 {
		t.Errorf("stream a has %d subscribers after Remove, want 1 (the other route)", got)
	}
	if _, ok := h.router.Stats("p"); ok {
		t.Error("Stats reports the removed route")
	}
	h.emit(t, "a", 2)
	enginetest.Eventually(t, "the other route to go on", func() bool { return h.stats(t, "other", "a").Delivered == 3 })
	checkSeqs(t, "removed route", rec.seqs("a"), seqRange(1, 1))

	h.router.Remove("p")       // removing twice is a no-op
	h.router.Remove("unknown") // as is removing an unknown route
	if got := h.router.Names(); !slices.Equal(got, []string{"other"}) {
		t.Errorf("Names() = %q, want [other]", got)
	}
}

// Once a route is told to stop (Remove, a re-wiring Add, the end of Run) its
// handler must not be given another message, even when more are at hand in a
// catch-up batch or the broker queue.
func TestStoppedRouteHandsNoFurtherMessageToItsHandler(t *testing.T) {
	tests := []struct {
		name string
		// stored: events 2..6 are in the store before the route starts,
		// so they arrive in one catch-up batch; otherwise they arrive live
		// and wait in the broker queue.
		stored bool
	}{
		{name: "catch-up batch", stored: true},
		{name: "broker queue", stored: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := running(t, nil)
			inHand := make(chan struct{})
			release := make(chan struct{})
			releaseOnce := sync.OnceFunc(func() { close(release) })
			defer releaseOnce()
			rec := newRecorder()
			handler := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
				if msg.Sequence == 2 {
					close(inHand)
					<-release
				}
				return rec.Handle(ctx, msg) // ignores ctx, as a fast in-memory handler may
			})
			if tt.stored {
				h.emit(t, "a", 6)
			}
			h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: handler, Start: fromStart})
			if !tt.stored {
				h.emit(t, "a", 1)
				enginetest.Eventually(t, "event 1 live", func() bool { return rec.count("a") == 1 })
				h.emit(t, "a", 5)
			}
			receive(t, "event 2 in hand", inHand)
			removed := make(chan struct{})
			go func() {
				h.router.Remove("p")
				close(removed)
			}()
			enginetest.Eventually(t, "the route to go", func() bool { return len(h.router.Names()) == 0 })
			releaseOnce()
			receive(t, "Remove to return", removed)
			checkSeqs(t, "removed route", rec.seqs("a"), seqRange(1, 2))
		})
	}
}
