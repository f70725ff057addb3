package natsstore_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
)

// BenchmarkSingleEventAppends compares, side by side on one embedded
// JetStream with file storage, 64 goroutines appending one event each
// through the event store (grouped into atomic batches, one expected last
// sequence per batch) against 64 goroutines publishing the same payloads
// with a bare nats.go client synchronously (the ceiling: no grouping, no
// checks). Run: go test -run '^$' -bench SingleEventAppends ./internal/engine/natsstore/
func BenchmarkSingleEventAppends(b *testing.B) {
	const workers = 64
	payload := []byte(`{"sku":"A-1","qty":2,"price":9.5}`)
	srv := natstest.Start(b, natstest.Options{})
	for round := range 3 {
		b.Run(fmt.Sprintf("store/round%d", round), func(b *testing.B) {
			c, err := natsstore.Connect(b.Context(), natsstore.Options{URL: srv.ClientURL(), Prefix: fmt.Sprintf("s%d", round)})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			s, err := natsstore.NewEventStore(b.Context(), c)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			var n atomic.Int64
			fresh := []bool{true}
			run(b, workers, func() error {
				i := n.Add(1)
				ev := engine.Message{ID: fmt.Sprintf("e-%d", i), Stream: "orders", Name: "OrderPlaced", Payload: payload}
				_, err := s.AppendNew(b.Context(), "orders", eventstore.Any, []engine.Message{ev}, fresh)
				return err
			})
		})
		b.Run(fmt.Sprintf("bare/round%d", round), func(b *testing.B) {
			nc, err := nats.Connect(srv.ClientURL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			name := fmt.Sprintf("BARE%d", round)
			if _, err := js.CreateStream(b.Context(), jetstream.StreamConfig{
				Name: name, Subjects: []string{name + ".>"}, Storage: jetstream.FileStorage,
			}); err != nil {
				b.Fatal(err)
			}
			run(b, workers, func() error {
				_, err := js.Publish(b.Context(), name+".orders", payload)
				return err
			})
		})
	}
}

// run calls op b.N times from workers goroutines and reports events/s.
func run(b *testing.B, workers int, op func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
