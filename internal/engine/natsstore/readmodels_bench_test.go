package natsstore

import (
	"fmt"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// BenchmarkReadModelsApply is one projection applying one event at a time,
// as a projection does: a count, a list item and a latest value by key,
// with the checkpoint; then a read, which waits for the last commit. On
// the shared single-node server (file storage), and on three nodes on
// loopback with a stream of three replicas.
func BenchmarkReadModelsApply(b *testing.B) {
	b.Run("OneNode", func(b *testing.B) {
		benchmarkApply(b, openReadModels(b, testPrefix(b)))
	})
	b.Run("ThreeNodes", func(b *testing.B) {
		c := natstest.StartCluster(b, natstest.Options{})
		conn, err := Connect(b.Context(), Options{URL: c.URLs(), Replicas: 3})
		if err != nil {
			b.Fatal(err)
		}
		s, err := NewReadModels(b.Context(), conn)
		if err != nil {
			b.Fatal(err)
		}
		o := ownedReadModels{s, conn}
		b.Cleanup(func() { _ = o.Close() })
		benchmarkApply(b, o)
	})
}

func benchmarkApply(b *testing.B, s ownedReadModels) {
	ctx := b.Context()
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		err := s.Apply(ctx, "ns/p", []readmodel.Change{
			{Key: "count", Op: readmodel.OpIncrement, Delta: 1},
			{Key: "items", Op: readmodel.OpAppend, Value: map[string]any{"n": i}},
			{Key: fmt.Sprint("order-", i%100), Op: readmodel.OpSet, Value: map[string]any{"status": "paid", "n": i}},
		}, readmodel.Checkpoint{"orders": i})
		if err != nil {
			b.Fatal(err)
		}
	}
	// The last Applies are committed in the background: a read waits.
	if _, err := s.Checkpoint(ctx, "ns/p"); err != nil {
		b.Fatal(err)
	}
}
