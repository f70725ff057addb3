package router_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/router"
)

func TestRouteDeliversEachStreamInSequenceOrder(t *testing.T) {
	const n = 50
	h := running(t, nil)
	rec := newRecorder()
	h.add(t, router.Route{Name: "p", Streams: []string{"a", "b"}, Handler: rec, Start: fromStart})

	// Interleaved single-event appends, with a batch now and then.
	for i := 0; i < n; {
		h.emit(t, "a", 1)
		h.emit(t, "b", 1)
		i++
		if i%10 == 0 && i < n {
			h.emit(t, "b", 2)
			h.emit(t, "a", 2)
			i += 2
		}
	}
	enginetest.Eventually(t, "every event of both streams", func() bool { return rec.count("a") == n && rec.count("b") == n })
	checkSeqs(t, "stream a", rec.seqs("a"), seqRange(1, n))
	checkSeqs(t, "stream b", rec.seqs("b"), seqRange(1, n))
	for _, m := range rec.messages() {
		if m.ID == "" || m.Position == 0 {
			t.Fatalf("handled %s/%d with id %q position %d, want the stored event", m.Stream, m.Sequence, m.ID, m.Position)
		}
	}
}

func TestRouteStartingFromZeroReplaysStoredEventsThenFollowsLive(t *testing.T) {
	h := running(t, func(c *router.Config) { c.ReadBatch = 4 }) // several catch-up reads
	// Published before any route subscribed: only the store has them.
	stored := h.emit(t, "a", 10)

	rec := newRecorder()
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: rec, Start: fromStart})
	enginetest.Eventually(t, "the stored events", func() bool { return rec.count("a") == 10 })
	h.emit(t, "a", 5)
	enginetest.Eventually(t, "the live events", func() bool { return rec.count("a") == 15 })

	checkSeqs(t, "stream a", rec.seqs("a"), seqRange(1, 15))
	if got, want := rec.messages()[0].ID, stored[0].ID; got != want {
		t.Errorf("first handled event has id %q, want the first stored one %q", got, want)
	}
}

func TestRouteWithoutStartBeginsAtTheStreamsEnd(t *testing.T) {
	h := running(t, nil)
	h.emit(t, "a", 3)
	rec := newRecorder()
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: rec})
	// The route takes its position at some moment after Add; events
	// appended before it are behind the start. Keep appending until one
	// gets through.
	enginetest.Eventually(t, "a live event", func() bool {
		h.emit(t, "a", 1)
		return rec.count("a") > 0
	})
	first := rec.seqs("a")[0]
	if first <= 3 {
		t.Fatalf("first handled sequence %d, want one after the 3 events stored before Add", first)
	}
	last := h.emit(t, "a", 2)[1].Sequence
	enginetest.Eventually(t, "the later events", func() bool {
		s := rec.seqs("a")
		return s[len(s)-1] == last
	})
	checkSeqs(t, "stream a", rec.seqs("a"), seqRange(first, last))
}

func TestCatchUpSwitchOverHasNoGapAndNoDuplicate(t *testing.T) {
	const n = 600
	streams := []string{"a", "b"}
	// Small batches and queues so catch-up takes many reads while writers
	// fill, and block on, the live queues.
	h := running(t, func(c *router.Config) { c.ReadBatch = 16 })
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: a blocked writer returns on it
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var written [2]atomic.Int64
	for i, s := range streams {
		wg.Go(func() {
			for range n {
				if _, err := h.emitNew(ctx, s, 1); err != nil {
					if ctx.Err() == nil {
						t.Errorf("writer of %s: %v", s, err)
					}
					return
				}
				written[i].Add(1)
			}
		})
	}
	enginetest.Eventually(t, "the writers to be under way", func() bool { return written[0].Load() >= 50 && written[1].Load() >= 50 })

	rec := newRecorder()
	h.add(t, router.Route{Name: "p", Streams: streams, Handler: rec, Start: fromStart,
		Capacity: map[string]int{"a": 8, "b": 8}})
	if written[0].Load() == n && written[1].Load() == n {
		t.Log("writers finished before the route was added; the switch-over saw no live traffic")
	}
	enginetest.Eventually(t, "every event of both streams", func() bool { return rec.count("a") >= n && rec.count("b") >= n })
	wg.Wait()
	for _, s := range streams {
		checkSeqs(t, "stream "+s, rec.seqs(s), seqRange(1, n))
	}
}

func TestEventsPublishedBeforeSubscribingAreReadFromTheStore(t *testing.T) {
	h := running(t, nil)
	rec := newRecorder()
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: rec, Start: fromStart})
	h.emit(t, "a", 1)
	enginetest.Eventually(t, "event 1 live", func() bool { return rec.count("a") == 1 })

	// 2 and 3 are stored but never published (a processor crashed, or
	// published them before this route subscribed); 4 is published.
	h.appendOnly(t, "a", 2)
	readsBefore := h.store.reads.Load()
	h.emit(t, "a", 1)
	enginetest.Eventually(t, "events 2 to 4", func() bool { return rec.count("a") == 4 })
	checkSeqs(t, "stream a", rec.seqs("a"), seqRange(1, 4))
	if h.store.reads.Load() == readsBefore {
		t.Error("the gap before event 4 was filled without reading the store")
	}

	// Published out of order: 7 first fills 5 and 6 from the store, the
	// late 5 and 6 are dropped.
	late := h.appendOnly(t, "a", 2)
	h.emit(t, "a", 1)
	h.publish(t, late[1], late[0])
	h.emit(t, "a", 1)
	enginetest.Eventually(t, "events 5 to 8", func() bool { return rec.count("a") >= 8 })
	checkSeqs(t, "stream a", rec.seqs("a"), seqRange(1, 8))
}

func TestRedeliveredSequencesAreDropped(t *testing.T) {
	h := running(t, nil)
	rec := newRecorder()
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: rec, Start: fromStart})

	first := h.emit(t, "a", 1)
	h.publish(t, first...)
	second := h.emit(t, "a", 2)
	h.publish(t, first[0], second[0], second[1], second[0])
	// The broker keeps a stream's order, so once 4 is handled every
	// redelivery before it has been seen and dropped.
	h.emit(t, "a", 1)
	enginetest.Eventually(t, "event 4", func() bool {
		s := rec.seqs("a")
		return len(s) > 0 && s[len(s)-1] == 4
	})
	checkSeqs(t, "stream a", rec.seqs("a"), seqRange(1, 4))
	if got := h.stats(t, "p", "a").Delivered; got != 4 {
		t.Errorf("Delivered = %d, want 4", got)
	}
}

// A handler that holds one event does not make the publisher wait: the
// route falls behind, and once the handler answers it reads what the broker
// did not queue back from the store, losing nothing.
func TestSlowHandlerFallsBehindWithoutHoldingUpThePublisherAndLosesNothing(t *testing.T) {
	const n = 300
	h := running(t, nil)
	gate := make(chan struct{})
	inHand := make(chan struct{})
	rec := newRecorder()
	handler := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		if msg.Sequence == 2 {
			close(inHand)
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return rec.Handle(ctx, msg)
	})
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: handler, Start: fromStart,
		Capacity: map[string]int{"a": 1}})
	// Event 1 proves the route is live, past its catch-up read.
	h.emit(t, "a", 1)
	enginetest.Eventually(t, "event 1", func() bool { return rec.count("a") == 1 })
	readsBefore := h.store.reads.Load()

	h.emit(t, "a", 1)
	receive(t, "event 2 in hand", inHand)
	// Every publish returns while the handler holds event 2 and the queue
	// of one is full.
	for range n - 2 {
		h.emit(t, "a", 1)
	}
	if got := h.stats(t, "p", "a").Queued; got > 1 {
		t.Errorf("%d events queued for the route, want at most its capacity 1", got)
	}
	close(gate)

	enginetest.Eventually(t, "every event", func() bool { return rec.count("a") == n })
	checkSeqs(t, "stream a", rec.seqs("a"), seqRange(1, n))
	if got := h.store.reads.Load() - readsBefore; got == 0 {
		t.Errorf("the router never read the store, want it to have read back the events the broker did not queue")
	}
}

func TestHandlerIsNeverCalledConcurrently(t *testing.T) {
	const n = 100
	streams := []string{"a", "b", "c", "d"}
	h := running(t, nil)
	var inFlight, overlaps atomic.Int64
	rec := newRecorder()
	handler := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		if inFlight.Add(1) > 1 {
			overlaps.Add(1)
		}
		defer inFlight.Add(-1)
		runtime.Gosched() // give another stream's consumer the chance to enter
		return rec.Handle(ctx, msg)
	})
	for _, s := range streams {
		h.emit(t, s, n) // stored, so every consumer starts with a full catch-up
	}
	h.add(t, router.Route{Name: "p", Streams: streams, Handler: handler, Start: fromStart})
	enginetest.Eventually(t, "every event", func() bool { return rec.total() == n*len(streams) })
	if got := overlaps.Load(); got != 0 {
		t.Errorf("the handler was entered %d times while already running, want 0", got)
	}
	for _, s := range streams {
		checkSeqs(t, "stream "+s, rec.seqs(s), seqRange(1, n))
	}
}
