package projection_test

import (
	"context"
	"testing"

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
