package diskstore

import (
	"context"
	"slices"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox/outboxtest"
)

func TestOutboxConformance(t *testing.T) {
	outboxtest.Run(t, func(t *testing.T, capacity int) outbox.Outbox {
		ob, err := NewOutbox(openTestDB(t, t.TempDir()), capacity)
		if err != nil {
			t.Fatal(err)
		}
		return ob
	})
}

func TestOutboxEntriesSurviveReopeningTheFile(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := NewOutbox(db, 10)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	msgs := []engine.Message{
		{ID: "a", Stream: "s", Payload: []byte(`{"n":1}`), Headers: map[string]string{"ce-source": "/x"}},
		{ID: "b", Stream: "s", Payload: []byte(`{"n":2}`)},
		{ID: "c", Stream: "s", Payload: []byte(`{"n":3}`)},
	}
	if err := ob.Enqueue(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	first, err := ob.Pending(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.MarkDispatched(ctx, []uint64{first[0].Position}); err != nil {
		t.Fatal(err)
	}
	_ = ob.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	ob2, err := NewOutbox(openTestDB(t, dir), 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := ob2.Len(); got != 2 {
		t.Fatalf("Len after reopening: got %d, want the 2 undispatched", got)
	}
	select {
	case <-ob2.Signal():
	default:
		t.Fatal("reopened outbox with pending entries does not signal the processor")
	}
	pending, err := ob2.Pending(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, 0, len(pending))
	for _, e := range pending {
		got = append(got, e.Message.ID+":"+string(e.Message.Payload))
	}
	if want := []string{`b:{"n":2}`, `c:{"n":3}`}; !slices.Equal(got, want) {
		t.Fatalf("pending after reopening: got %v, want %v", got, want)
	}
	// The entries left over count against the capacity of the new run.
	if err := ob2.Enqueue(ctx, msgs[:2]); err != outbox.ErrFull {
		t.Fatalf("Enqueue of 2 into 2 left of capacity 3: got %v, want ErrFull", err)
	}
	// New positions never reuse old ones.
	if err := ob2.Enqueue(ctx, msgs[:1]); err != nil {
		t.Fatal(err)
	}
	pending, _ = ob2.Pending(ctx, 10)
	if last := pending[len(pending)-1].Position; last <= pending[len(pending)-2].Position {
		t.Fatalf("new entry got position %d, not after %d", last, pending[len(pending)-2].Position)
	}
}
