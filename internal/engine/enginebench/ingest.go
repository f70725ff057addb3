package enginebench

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

// ingestCallers is how many goroutines call Ingest at once, as the HTTP
// server's handlers would under load.
const ingestCallers = 64

// ParallelIngest measures what the HTTP layer asks of the engine: about 64
// goroutines calling Ingest on one stream with batch events of a small JSON
// payload each, while the engine's processor moves them from the outbox to
// the event store and the broker. No projection subscribes. The run ends
// when the store holds every event. One op is one event.
func ParallelIngest(b *testing.B, batch int) {
	store := eventstore.NewMemory()
	e := newEngineWithStore(b, store, outbox.NewMemory(100_000))
	const stream = "s0"
	if err := e.ApplyStream(core.StreamSpec{Name: stream, DefaultEventName: itemCreated}); err != nil {
		b.Fatal(err)
	}
	RunEngine(b, e)

	// Each goroutine claims a call's worth of ops at a time; ids come from
	// the claimed range, so every event is distinct and the count is exact.
	var claimed atomic.Int64
	total := int64(b.N)
	b.SetParallelism(max(1, ingestCallers/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		events := make([]core.Event, batch)
		exhausted := false
		for pb.Next() {
			// pb.Next hands out ops one by one; a call takes a batch of
			// them, so the goroutines skip as many ops as the batches took.
			// Skipping touches no shared counter once all are claimed: 64
			// goroutines bouncing it would take CPU from the processor.
			if exhausted {
				continue
			}
			first := claimed.Add(int64(batch)) - int64(batch)
			if first >= total {
				exhausted = true
				continue
			}
			n := int(min(int64(batch), total-first))
			for i := range n {
				events[i] = core.Event{ID: "evt-" + strconv.FormatInt(first+int64(i), 10), Payload: payload}
			}
			for {
				_, err := e.Ingest(context.Background(), stream, events[:n])
				if err == nil {
					break
				}
				if !errors.Is(err, outbox.ErrFull) {
					b.Error(err)
					return
				}
				// Backpressure: a client told 503 waits before it retries;
				// spinning would take the processor's CPU.
				time.Sleep(100 * time.Microsecond)
			}
		}
	})
	waitStored(b, store, stream, uint64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// waitStored waits until stream's last sequence reaches want.
func waitStored(b *testing.B, store eventstore.Store, stream string, want uint64) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := store.Version(context.Background(), stream)
		if err != nil {
			b.Fatal(err)
		}
		if got >= want {
			if got > want {
				b.Fatalf("stream %q holds %d events, want %d", stream, got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("stream %q holds %d of %d events at the deadline", stream, got, want)
		}
		time.Sleep(100 * time.Microsecond)
	}
}
