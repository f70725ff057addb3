package router_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/router"
)

// publishBound is how long one publish may take in the isolation tests: far
// above a publish into queues (microseconds), far below enginetest.Timeout,
// so a publisher held up by a stuck route fails fast.
const publishBound = 2 * time.Second

// emitWithin is emit with the publish bounded by publishBound.
func (h *harness) emitWithin(t testing.TB, stream string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), publishBound)
	defer cancel()
	if _, err := h.emitNew(ctx, stream, n); err != nil {
		t.Fatalf("a publish was held up by a route that does not read: %v", err)
	}
}

// stuckHandler records what it handles but holds the first message it gets
// until release is closed, as a handler whose sink is down would.
type stuckHandler struct {
	rec     *recorder
	inHand  chan struct{} // closed when the first message is held
	release chan struct{}
	once    sync.Once
}

func newStuckHandler(t *testing.T) *stuckHandler {
	s := &stuckHandler{rec: newRecorder(), inHand: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(s.unblock) // so the router can stop
	return s
}

func (s *stuckHandler) Handle(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.inHand)
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.rec.Handle(ctx, msg)
}

func (s *stuckHandler) unblock() {
	select {
	case <-s.release:
	default:
		close(s.release)
	}
}

func TestStuckRouteHoldsUpNeitherPublishersNorOtherRoutes(t *testing.T) {
	const n = 200
	h := running(t, nil)
	stuck := newStuckHandler(t)
	h.add(t, router.Route{Name: "stuck", Streams: []string{"a"}, Handler: stuck, Start: fromStart,
		Capacity: map[string]int{"a": 4}})
	free := newRecorder()
	h.add(t, router.Route{Name: "free", Streams: []string{"a", "b"}, Handler: free, Start: fromStart,
		Capacity: map[string]int{"a": 4, "b": 4}})

	h.emitWithin(t, "a", 1)
	receive(t, "the stuck route to hold event a/1", stuck.inHand)
	// Far more events than the stuck route's queue holds, on its stream and
	// on another, one publish at a time as the processor does.
	for range n - 1 {
		h.emitWithin(t, "a", 1)
		h.emitWithin(t, "b", 1)
	}
	h.emitWithin(t, "b", 1)

	enginetest.Eventually(t, "the free route to handle every event", func() bool {
		return free.count("a") == n && free.count("b") == n
	})
	checkSeqs(t, "free route, stream a", free.seqs("a"), seqRange(1, n))
	checkSeqs(t, "free route, stream b", free.seqs("b"), seqRange(1, n))
	if got := stuck.rec.count("a"); got != 0 {
		t.Fatalf("the stuck route finished %d events while its handler was held, want 0", got)
	}
	if got := h.stats(t, "stuck", "a").Queued; got > 4 {
		t.Fatalf("the stuck route has %d events queued, want at most its capacity 4", got)
	}

	// Once its handler answers again it catches up from the store: every
	// event once, in order.
	stuck.unblock()
	enginetest.Eventually(t, "the stuck route to catch up", func() bool { return stuck.rec.count("a") == n })
	h.emitWithin(t, "a", 1)
	enginetest.Eventually(t, "the caught-up route to follow live", func() bool { return stuck.rec.count("a") == n+1 })
	checkSeqs(t, "stuck route, stream a", stuck.rec.seqs("a"), seqRange(1, n+1))
	if st := h.stats(t, "stuck", "a"); st.Lags == 0 || st.Err != "" {
		t.Errorf("stuck route stats %+v, want it to have lagged at least once and no error", st)
	}
}

// A route slower than the publisher falls behind again and again while
// events keep coming; each time it reads what it missed from the store and
// rejoins the live feed with no gap and no duplicate.
func TestRouteThatKeepsFallingBehindHandlesEveryEventOnceInOrder(t *testing.T) {
	const batches, batch = 100, 10
	h := running(t, func(c *router.Config) { c.ReadBatch = 7 })
	rec := newRecorder()
	slow := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		if msg.Sequence%50 == 0 {
			time.Sleep(time.Millisecond)
		}
		return rec.Handle(ctx, msg)
	})
	h.add(t, router.Route{Name: "slow", Streams: []string{"a"}, Handler: slow, Start: fromStart,
		Capacity: map[string]int{"a": 2}})
	h.emitWithin(t, "a", 1)
	enginetest.Eventually(t, "the route to go live", func() bool { return rec.count("a") == 1 })
	readsBefore := h.store.reads.Load()

	for range batches {
		h.emitWithin(t, "a", batch)
	}
	const total = 1 + batches*batch
	enginetest.Eventually(t, "every event", func() bool { return rec.count("a") == total })
	checkSeqs(t, "stream a", rec.seqs("a"), seqRange(1, total))
	if st := h.stats(t, "slow", "a"); st.Lags == 0 || h.store.reads.Load() == readsBefore {
		t.Errorf("the route lagged %d times and read the store %d times, "+
			"want it to have fallen behind its queue of 2 and caught up from the store",
			st.Lags, h.store.reads.Load()-readsBefore)
	}
}
