package broker_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
)

// BenchmarkMemoryPublishReceive: one op is one message published and received
// by one subscriber on its own goroutine.
func BenchmarkMemoryPublishReceive(b *testing.B) {
	benchmarkFanOut(b, 1)
}

// BenchmarkMemoryPublishReceiveFanOut4: one op is one message published and
// received by each of 4 subscribers.
func BenchmarkMemoryPublishReceiveFanOut4(b *testing.B) {
	benchmarkFanOut(b, 4)
}

func benchmarkFanOut(b *testing.B, subscribers int) {
	br := broker.NewMemory()
	defer func() { _ = br.Close() }()
	const capacity = 256
	var received sync.WaitGroup
	subs := make([]broker.Subscription, 0, subscribers)
	for range subscribers {
		sub, err := br.Subscribe("bench", capacity)
		if err != nil {
			b.Fatalf("Subscribe() = %v, want nil error", err)
		}
		subs = append(subs, sub)
		received.Go(func() {
			for range b.N {
				<-sub.C()
			}
		})
	}
	msg := engine.Message{ID: "1", Name: "Benchmarked", Stream: "bench", Payload: []byte(`{"n":1}`)}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	full := func(s broker.Subscription) bool { return s.Len() == capacity }
	for range b.N {
		// A full queue would drop its subscriber: the benchmark is the
		// hand-off, so the publisher keeps behind the slowest reader.
		for slices.ContainsFunc(subs, full) {
			runtime.Gosched()
		}
		if err := br.Publish(ctx, msg); err != nil {
			b.Fatalf("Publish() = %v, want nil", err)
		}
	}
	received.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N*subscribers)/b.Elapsed().Seconds(), "deliveries/s")
}
