package processor_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/processor"
)

// BenchmarkProcessorDispatch measures the full path of one message: enqueued
// in the outbox, dispatched by the processor to the store and the broker, and
// received by a subscriber.
func BenchmarkProcessorDispatch(b *testing.B) {
	ob, store, bus := outbox.NewMemory(0), eventstore.NewMemory(), broker.NewMemory()
	const capacity = 1024
	sub, err := bus.Subscribe("items", capacity)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	p, err := processor.New(processor.Config{Outbox: ob, Store: store, Broker: bus})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			b.Errorf("Run: %v", err)
		}
	}()

	// Messages are built before the timer: building them is ingest's cost.
	msgs := make([]engine.Message, b.N)
	for i := range msgs {
		msgs[i] = engine.Message{
			ID: fmt.Sprintf("item-%d", i), Name: "ItemCreated", Stream: "items",
			ContentType: "application/json", Payload: []byte(`{"foo":"a","n":1}`),
		}
	}
	received := make(chan int, 1)
	var count atomic.Int64
	go func() {
		n := 0
		for range sub.C() {
			count.Add(1)
			if n++; n == b.N {
				break
			}
		}
		received <- n
	}()

	b.ReportAllocs()
	b.ResetTimer()
	for i := range msgs {
		// A full queue would drop the subscriber: keep no more in flight
		// than its queue holds.
		for int64(i)-count.Load() >= capacity {
			runtime.Gosched()
		}
		// A full outbox is backpressure, not a failure: wait for the processor.
		for {
			err := ob.Enqueue(ctx, msgs[i:i+1])
			if err == nil {
				break
			}
			if !errors.Is(err, outbox.ErrFull) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
	}
	if n := <-received; n != b.N {
		b.Fatalf("subscriber received %d messages, want %d", n, b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
