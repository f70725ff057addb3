package outbox_test

import (
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox/outboxtest"
)

func TestMemoryConformance(t *testing.T) {
	outboxtest.Run(t, outboxtest.Features{HasRoom: true, PendingInto: true}, func(_ *testing.T, _ string, capacity int) outbox.Outbox {
		return outbox.NewMemory(capacity)
	})
}

func TestNewMemoryWithoutCapacityUsesDefaultCapacity(t *testing.T) {
	for _, capacity := range []int{0, -1} {
		ob := outbox.NewMemory(capacity)
		if err := ob.Enqueue(t.Context(), make([]engine.Message, outbox.DefaultCapacity)); err != nil {
			t.Fatalf("NewMemory(%d): Enqueue of DefaultCapacity messages: got error %v, want nil", capacity, err)
		}
		if err := ob.Enqueue(t.Context(), make([]engine.Message, 1)); !errors.Is(err, outbox.ErrFull) {
			t.Fatalf("NewMemory(%d): Enqueue past DefaultCapacity: got error %v, want ErrFull", capacity, err)
		}
	}
}
