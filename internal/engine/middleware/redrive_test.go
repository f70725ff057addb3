package middleware

import (
	"context"
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// Each redrive of an event that fails again is a dead letter of its own,
// the same for a retry of that one redrive.
func TestDeadLetterOfARedriveHasAnIDPerGeneration(t *testing.T) {
	enq := &fakeEnqueuer{}
	msg := testMessage()
	fail := func(ctx context.Context) {
		t.Helper()
		_, err := testDeadLetter(t, enq, "p")(newScriptedHandler(errBoom)).Handle(ctx, msg)
		if !errors.Is(err, engine.ErrDeadLettered) {
			t.Fatalf("got %v, want ErrDeadLettered", err)
		}
	}
	fail(context.Background())
	fail(engine.WithRedrive(context.Background(), engine.Redrive{Generation: 1}))
	fail(engine.WithRedrive(context.Background(), engine.Redrive{Generation: 1}))
	fail(engine.WithRedrive(context.Background(), engine.Redrive{Generation: 2}))
	got := enq.enqueued()
	if got[0].ID == got[1].ID || got[1].ID != got[2].ID || got[1].ID == got[3].ID || got[0].ID == got[3].ID {
		t.Fatalf("ids %s %s %s %s: want one per generation, the same for a generation", got[0].ID, got[1].ID, got[2].ID, got[3].ID)
	}
	if _, ok := got[0].Headers[engine.HeaderDeadLetterRedrives]; ok || got[3].Headers[engine.HeaderDeadLetterRedrives] != "2" {
		t.Fatalf("redrives headers %q and %q, want none and 2",
			got[0].Headers[engine.HeaderDeadLetterRedrives], got[3].Headers[engine.HeaderDeadLetterRedrives])
	}
}

// Dedupe never skips a redrive, even of an event it remembers handling.
func TestDedupeLetsARedriveThrough(t *testing.T) {
	mw, err := Dedupe(DedupeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h := newScriptedHandler()
	chain := mw(h)
	msg := testMessage()
	if _, err := chain.Handle(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if _, err := chain.Handle(context.Background(), msg); !errors.Is(err, engine.ErrSkip) {
		t.Fatalf("a plain redelivery: got %v, want ErrSkip", err)
	}
	if _, err := chain.Handle(engine.WithRedrive(context.Background(), engine.Redrive{Generation: 1}), msg); err != nil {
		t.Fatalf("a redrive: got %v, want it handled", err)
	}
	if h.calls() != 2 {
		t.Fatalf("handler called %d times, want 2", h.calls())
	}
}
