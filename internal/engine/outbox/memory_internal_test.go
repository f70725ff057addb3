package outbox

import (
	"slices"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

func TestMemoryFreesDispatchedChunksBehindAPendingEntry(t *testing.T) {
	m := NewMemory(8)
	// Keep the oldest entry pending while thousands pass behind it, marked
	// out of order: the chunks held must not grow with the number that passed.
	if err := m.Enqueue(t.Context(), make([]engine.Message, 1)); err != nil {
		t.Fatal(err)
	}
	const passed = 80 * chunkLen
	for range passed {
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
	chunks := len(m.chunks)
	m.mu.Unlock()
	if chunks > 2 {
		t.Fatalf("chunks after %d out-of-order marks behind one pending entry: got %d, want at most 2", passed, chunks)
	}
	if got := m.Len(); got != 1 {
		t.Fatalf("Len: got %d, want 1", got)
	}
	pending, err := m.Pending(t.Context(), 8)
	if err != nil || len(pending) != 1 || pending[0].Position != 1 {
		t.Fatalf("Pending: got %v, %v, want the entry at position 1", pending, err)
	}
}

func TestMemoryMarksPositionsAfterAFreedChunk(t *testing.T) {
	m := NewMemory(4 * chunkLen)
	if err := m.Enqueue(t.Context(), make([]engine.Message, 3*chunkLen)); err != nil {
		t.Fatal(err)
	}
	// Free the middle chunk, so the chunks are no longer contiguous and
	// positions after it are found by search.
	middle := make([]uint64, chunkLen)
	for i := range middle {
		middle[i] = uint64(chunkLen + 1 + i)
	}
	if err := m.MarkDispatched(t.Context(), middle); err != nil {
		t.Fatal(err)
	}
	last := uint64(3 * chunkLen)
	if err := m.MarkDispatched(t.Context(), []uint64{1, last, chunkLen + 1}); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Len(), chunkLen-1+chunkLen-1; got != want {
		t.Fatalf("Len: got %d, want %d", got, want)
	}
	pending, err := m.Pending(t.Context(), 4*chunkLen)
	if err != nil {
		t.Fatal(err)
	}
	positions := make([]uint64, len(pending))
	for i, e := range pending {
		positions[i] = e.Position
	}
	for _, gone := range []uint64{1, chunkLen + 1, last} {
		if slices.Contains(positions, gone) {
			t.Fatalf("Pending holds dispatched position %d", gone)
		}
	}
	if !slices.IsSorted(positions) {
		t.Fatalf("Pending positions are not oldest first: %v", positions)
	}
}
