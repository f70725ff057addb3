package broker_test

import (
	"context"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker/brokertest"
)

func TestMemoryConformance(t *testing.T) {
	brokertest.Run(t, func(*testing.T) broker.Broker { return broker.NewMemory() })
}

// The fast path (a queue with room) must not allocate: no goroutine, no
// per-message state, only a copy into the channel's buffer.
func TestMemoryPublishToQueueWithRoomDoesNotAllocate(t *testing.T) {
	b := broker.NewMemory()
	defer func() { _ = b.Close() }()
	sub, err := b.Subscribe("orders", 1)
	if err != nil {
		t.Fatalf("Subscribe() = %v, want nil error", err)
	}
	ctx := context.Background()
	msgs := []engine.Message{{ID: "1", Stream: "orders"}}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := b.Publish(ctx, msgs...); err != nil {
			t.Fatalf("Publish() = %v, want nil", err)
		}
		<-sub.C()
	})
	if allocs != 0 {
		t.Fatalf("Publish+receive allocated %v times per message, want 0", allocs)
	}
}
