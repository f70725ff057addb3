package eventstoretest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// eventsPerKey is how many events each key of RunReadKeyBenchmark's streams
// holds, the key read included.
const eventsPerKey = 100

// benchBatch is how many events one Append of a benchmark's setup takes:
// a durable store commits once per Append.
const benchBatch = 10_000

// RunReadKeyBenchmark measures ReadKey of one key's 100 events in a stream of
// 1,000 events and in one of 1,000,000, side by side: with a key index they
// cost about the same. Every event of a stream is keyed, 100 per key, each
// key's events spread evenly through the stream (event i has key i mod
// size/100), so the key read is scattered like any other. open returns an
// empty store; each size is built once, before its sub-benchmark, and the
// time that took is logged. Besides ns/op, p50-ns is the median op.
func RunReadKeyBenchmark(b *testing.B, open func(b *testing.B) eventstore.Store) {
	for _, size := range []int{1_000, 1_000_000} {
		s := open(b)
		start := time.Now()
		buildKeyedStream(b, s, size)
		b.Logf("%d events appended in %s", size, time.Since(start).Round(time.Millisecond))
		b.Run(fmt.Sprintf("events=%d", size), func(b *testing.B) {
			ctx := b.Context()
			var took []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				got, err := s.ReadKey(ctx, ordersStream, "k0", 0, eventsPerKey)
				took = append(took, time.Since(t0))
				if err != nil || len(got) != eventsPerKey {
					b.Fatalf("ReadKey: got %d events, %v; want %d", len(got), err, eventsPerKey)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
		})
		if err := s.Close(); err != nil {
			b.Fatalf("Close: %v", err)
		}
	}
}

// buildKeyedStream appends size events to ordersStream, event i of key
// "k<i mod size/eventsPerKey>", in batches of benchBatch.
func buildKeyedStream(b *testing.B, s eventstore.Store, size int) {
	b.Helper()
	keys := size / eventsPerKey
	payload := bytes.Repeat([]byte("x"), 100)
	batch := make([]engine.Message, 0, benchBatch)
	for i := range size {
		batch = append(batch, engine.Message{
			ID:            fmt.Sprintf("00000000-0000-7000-8000-%012d", i),
			Name:          "ItemCreated",
			ContentType:   "application/json",
			CorrelationID: fmt.Sprintf("11111111-0000-7000-8000-%012d", i),
			Key:           fmt.Sprintf("k%d", i%keys),
			Payload:       payload,
		})
		if len(batch) == cap(batch) || i == size-1 {
			if _, err := s.Append(b.Context(), ordersStream, eventstore.Any, batch); err != nil {
				b.Fatalf("Append: %v", err)
			}
			batch = batch[:0]
		}
	}
}
