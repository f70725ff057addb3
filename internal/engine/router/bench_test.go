package router_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/router"
)

// BenchmarkRouteDelivery measures one event published on the broker and
// handled by a no-op handler. The sequences are contiguous and the store is
// empty, so the router must take every event from the broker without reading
// the store for gaps.
func BenchmarkRouteDelivery(b *testing.B) {
	h := running(b, nil)
	var handled atomic.Int64
	done := make(chan struct{})
	last := int64(b.N)
	handler := engine.HandlerFunc(func(context.Context, engine.Message) ([]engine.Message, error) {
		if handled.Add(1) == last {
			close(done)
		}
		return nil, nil
	})
	h.add(b, router.Route{Name: "bench", Streams: []string{"s"}, Handler: handler})
	enginetest.Eventually(b, "the route to subscribe", func() bool { return h.broker.Subscribers("s") == 1 })
	// The route reads the (empty) store once as it starts; wait for that so
	// the count below holds only gap reads.
	enginetest.Eventually(b, "the route's first catch-up read", func() bool { return h.store.reads.Load() == 1 })

	msgs := make([]engine.Message, b.N)
	for i := range msgs {
		seq := uint64(i + 1)
		msgs[i] = engine.Message{ID: "e" + strconv.Itoa(i+1), Stream: "s", Sequence: seq, Position: seq, Payload: []byte(`{}`)}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range msgs {
		// Only the broker has these events: a route that fell behind its
		// queue would look for them in the store. Stay within the queue.
		for int64(i)-handled.Load() >= router.DefaultCapacity {
			runtime.Gosched()
		}
		if err := h.broker.Publish(ctx, msgs[i]); err != nil {
			b.Fatalf("publish %d: %v", i+1, err)
		}
	}
	select {
	case <-done:
	case <-time.After(enginetest.Timeout):
		b.Fatalf("handled %d of %d events within %s", handled.Load(), b.N, enginetest.Timeout)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if reads := h.store.reads.Load(); reads != 1 {
		b.Errorf("the router read the store %d times, want only its first catch-up read: contiguous sequences must not be read as gaps", reads)
	}
}
