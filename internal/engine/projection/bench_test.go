package projection_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/boltstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// BenchmarkAppendProjection measures one Handle of an Append projection with
// a fixed key against the memory store: the per-event cost of the read side.
func BenchmarkAppendProjection(b *testing.B) {
	p, err := projection.New(spec(projection.Append, "items", ""), readmodel.NewMemory())
	if err != nil {
		b.Fatalf("new projection: %v", err)
	}
	msg := event(0, "ItemCreated", "a", 1)
	ctx := context.Background()
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		seq++
		msg.Sequence = seq
		if _, err := p.Handle(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFold folds the same events, spread over 100 keys by
// keyExpression event.key, into a Count and a Reduce read model (the order
// totals of the contract's example), on each store: what a Reduce costs
// next to the cheapest fold. Each sub-benchmark reports events/s.
func BenchmarkFold(b *testing.B) {
	const keys = 100
	msgs := make([]engine.Message, keys)
	for i := range msgs {
		msgs[i] = orderEvent(0, fmt.Sprintf("order-%d", i), "LineAdded", int64(i))
	}
	count := spec(projection.Count, "", "event.key")
	for _, backend := range []string{"memory", "disk"} {
		for _, s := range []projection.Spec{count, orderTotals()} {
			b.Run(backend+"/"+string(s.Type), func(b *testing.B) {
				store := readmodel.Store(readmodel.NewMemory())
				if backend == "disk" {
					db, err := boltstore.Open(b.TempDir(), boltstore.Options{})
					if err != nil {
						b.Fatal(err)
					}
					rm := boltstore.NewReadModels(db)
					b.Cleanup(func() { _ = rm.Close(); _ = db.Close() })
					store = rm
				}
				p, err := projection.New(s, store)
				if err != nil {
					b.Fatalf("new projection: %v", err)
				}
				ctx := context.Background()
				b.ReportAllocs()
				var seq uint64
				for b.Loop() {
					msg := msgs[seq%keys]
					seq++
					msg.Sequence = seq
					if _, err := p.Handle(ctx, msg); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
