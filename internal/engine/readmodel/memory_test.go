package readmodel_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel/readmodeltest"
)

func TestMemoryConformance(t *testing.T) {
	readmodeltest.Run(t, func(_ *testing.T) readmodel.Store { return readmodel.NewMemory() })
}

func TestMemoryRefusesCallsAfterClose(t *testing.T) {
	m := readmodel.NewMemory()
	if err := m.Apply(t.Context(), "ns/p", nil, readmodel.Checkpoint{"s": 1}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("close again: got %v, want nil", err)
	}
	if err := m.Apply(t.Context(), "ns/p", nil, readmodel.Checkpoint{"s": 2}); err == nil {
		t.Errorf("apply after close: got nil, want an error")
	}
	if _, err := m.Document(t.Context(), "ns/p"); err == nil {
		t.Errorf("document after close: got nil, want an error")
	}
	if _, err := m.Checkpoint(t.Context(), "ns/p"); err == nil {
		t.Errorf("checkpoint after close: got nil, want an error")
	}
	if err := m.Delete(t.Context(), "ns/p"); err == nil {
		t.Errorf("delete after close: got nil, want an error")
	}
}

func TestMemoryApplyHonoursACancelledContext(t *testing.T) {
	m := readmodel.NewMemory()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := m.Apply(ctx, "ns/p", []readmodel.Change{{Key: "k", Op: readmodel.OpSet, Value: "v"}}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("apply with a cancelled context: got %v, want context.Canceled", err)
	}
	if _, err := m.Document(t.Context(), "ns/p"); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("document after a cancelled apply: got %v, want ErrNotFound", err)
	}
}
