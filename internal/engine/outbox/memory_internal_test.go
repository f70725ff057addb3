package outbox

import (
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

func TestMemoryCompactsDispatchedSlots(t *testing.T) {
	m := NewMemory(8)
	// Keep the oldest entry pending while thousands pass behind it, marked
	// out of order: the slots must not grow with the number that passed.
	if err := m.Enqueue(t.Context(), make([]engine.Message, 1)); err != nil {
		t.Fatal(err)
	}
	for range 10 * compactAfter {
		if err := m.Enqueue(t.Context(), make([]engine.Message, 1)); err != nil {
			t.Fatal(err)
		}
		pending, err := m.Pending(t.Context(), 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.MarkDispatched(t.Context(), []uint64{pending[1].Position}); err != nil {
			t.Fatal(err)
		}
	}
	m.mu.Lock()
	slots := len(m.slots)
	m.mu.Unlock()
	if slots > 2*compactAfter+1 {
		t.Fatalf("slots after %d out-of-order marks behind one pending entry: got %d, want at most %d",
			10*compactAfter, slots, 2*compactAfter+1)
	}
	if got := m.Len(); got != 1 {
		t.Fatalf("Len: got %d, want 1", got)
	}
	pending, err := m.Pending(t.Context(), 8)
	if err != nil || len(pending) != 1 || pending[0].Position != 1 {
		t.Fatalf("Pending: got %v, %v, want the entry at position 1", pending, err)
	}
}
