package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

func TestSubscribeGivesStoredThenNewEventsDecodedAndRefusesUnknownStreams(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPlaced"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ingest := func(id, payload string) {
		t.Helper()
		if _, err := e.Ingest(ctx, "shop/orders", []core.Event{{ID: id, Payload: []byte(payload)}}); err != nil {
			t.Fatalf("Ingest %s: %v", id, err)
		}
	}
	ingest("a", `{"n":1}`)
	ingest("b", `{"n":2}`)

	sub, err := e.Subscribe(ctx, "shop/orders", 1)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer func() { _ = sub.Close() }()
	next := func(wantID string, wantN int64) {
		t.Helper()
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		v, ok := m.Value.(map[string]any)
		if m.ID != wantID || !ok || v["n"] != wantN {
			t.Fatalf("Next: id %q value %#v, want %q with n=%d decoded", m.ID, m.Value, wantID, wantN)
		}
	}
	next("b", 2) // after sequence 1
	ingest("c", `{"n":3}`)
	next("c", 3)

	if last, err := e.LastSequence(ctx, "shop/orders"); err != nil || last != 3 {
		t.Fatalf("LastSequence: %d, %v; want 3", last, err)
	}
	if _, err := e.Subscribe(ctx, "shop/nope", 0); !errors.Is(err, core.ErrStreamNotFound) {
		t.Fatalf("Subscribe to an unknown stream: %v, want ErrStreamNotFound", err)
	}
	if _, err := e.LastSequence(ctx, "shop/nope"); !errors.Is(err, core.ErrStreamNotFound) {
		t.Fatalf("LastSequence of an unknown stream: %v, want ErrStreamNotFound", err)
	}
}
