package outbox_test

import (
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox/outboxtest"
)

func TestMemoryConformance(t *testing.T) {
	outboxtest.Run(t, func(_ *testing.T, capacity int) outbox.Outbox {
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

func TestMemoryHasRoomFollowsEnqueueAndMarkDispatched(t *testing.T) {
	ob := outbox.NewMemory(3)
	if !ob.HasRoom(3) || ob.HasRoom(4) {
		t.Fatalf("empty outbox of 3: got HasRoom(3)=%v HasRoom(4)=%v, want true and false", ob.HasRoom(3), ob.HasRoom(4))
	}
	if err := ob.Enqueue(t.Context(), make([]engine.Message, 2)); err != nil {
		t.Fatal(err)
	}
	if ob.HasRoom(2) {
		t.Fatalf("outbox of 3 holding 2: got HasRoom(2)=true, want false")
	}
	if err := ob.MarkDispatched(t.Context(), []uint64{1}); err != nil {
		t.Fatal(err)
	}
	if !ob.HasRoom(2) {
		t.Fatalf("outbox of 3 holding 1: got HasRoom(2)=false, want true")
	}
}

func TestMemoryPendingIntoCopiesWhatPendingReturns(t *testing.T) {
	ob := outbox.NewMemory(10)
	msgs := make([]engine.Message, 5)
	for i := range msgs {
		msgs[i] = engine.Message{ID: string(rune('a' + i)), Stream: "s"}
	}
	if err := ob.Enqueue(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := ob.MarkDispatched(t.Context(), []uint64{2}); err != nil {
		t.Fatal(err)
	}
	want, err := ob.Pending(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	gotMsgs, gotPositions := make([]engine.Message, 3), make([]uint64, 3)
	n, err := ob.PendingInto(t.Context(), gotMsgs, gotPositions)
	if err != nil || n != len(want) {
		t.Fatalf("PendingInto: got %d, %v, want %d, nil", n, err, len(want))
	}
	for i, e := range want {
		if gotMsgs[i].ID != e.Message.ID || gotPositions[i] != e.Position {
			t.Errorf("PendingInto entry %d: got %q at %d, want %q at %d", i, gotMsgs[i].ID, gotPositions[i], e.Message.ID, e.Position)
		}
	}
}
