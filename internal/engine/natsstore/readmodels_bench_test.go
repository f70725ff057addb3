package natsstore

import (
	"fmt"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// BenchmarkReadModelsApply is one projection's Apply of one event at a
// time, as a projection applies them: a count, a list item and a latest
// value, with the checkpoint.
func BenchmarkReadModelsApply(b *testing.B) {
	s := openReadModels(b, fmt.Sprintf("bench%d", b.N))
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
