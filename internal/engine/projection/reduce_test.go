package projection_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/boltstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// orderTotals is the Reduce of the contract's example: each order's total,
// line count and last event name.
func orderTotals() projection.Spec {
	s := spec(projection.Reduce, "", "event.key")
	s.Reducer = projection.Reducer{
		Initial:    "{'total': 0, 'lines': 0}",
		Expression: "{'total': state.total + event.payload.amount, 'lines': state.lines + 1, 'status': event.name}",
	}
	return s
}

// orderEvent is the seq-th event of stream "items", of the order key.
func orderEvent(seq uint64, key, name string, amount int64) engine.Message {
	return engine.Message{
		ID: key + "-" + name, Name: name, Stream: "items", Sequence: seq, Key: key,
		Payload: []byte(`{"decoded":"below"}`), Value: map[string]any{"amount": amount},
	}
}

// stores are the read model backends a Reduce must agree on.
func stores(t *testing.T) map[string]readmodel.Store {
	t.Helper()
	db, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatalf("open disk store: %v", err)
	}
	disk := boltstore.NewReadModels(db)
	t.Cleanup(func() {
		if err := errors.Join(disk.Close(), db.Close()); err != nil {
			t.Errorf("close disk store: %v", err)
		}
	})
	return map[string]readmodel.Store{"memory": readmodel.NewMemory(), "disk": disk}
}

func TestReduceFoldsEachKeysEventsFromTheInitialState(t *testing.T) {
	events := []engine.Message{
		orderEvent(1, "order-1", "OrderPlaced", 0),
		orderEvent(2, "order-1", "LineAdded", 30),
		orderEvent(3, "order-2", "OrderPlaced", 0),
		orderEvent(4, "order-1", "LineAdded", 12),
		orderEvent(5, "order-2", "LineAdded", 5),
		orderEvent(6, "order-1", "OrderPaid", 0),
	}
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			p := newProjection(t, orderTotals(), store)
			for _, e := range events {
				handle(t, p, e)
			}
			wantDocument(t, store, `{
				"order-1": {"total": 42, "lines": 4, "status": "OrderPaid"},
				"order-2": {"total": 5, "lines": 2, "status": "LineAdded"}}`)
			wantCheckpoint(t, p, readmodel.Checkpoint{"items": 6})
		})
	}
}

// TestReduceChainsTheEventsOfAKeyBeforeTheyAreCommitted folds a burst of
// one key's events, each read back from the state the previous one left,
// however many of them a disk store has committed yet.
func TestReduceChainsTheEventsOfAKeyBeforeTheyAreCommitted(t *testing.T) {
	const n = 500
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			p := newProjection(t, orderTotals(), store)
			for i := uint64(1); i <= n; i++ {
				handle(t, p, orderEvent(i, "hot", "LineAdded", 2))
			}
			wantDocument(t, store, `{"hot": {"total": 1000, "lines": 500, "status": "LineAdded"}}`)
		})
	}
}

func TestReduceStateIsTheJSONDocumentsValue(t *testing.T) {
	// Doubles with whole values are integers once stored, as in every JSON
	// document of the engine: the expression converts with double() where
	// it adds doubles, and the state reads back the same on every backend.
	s := spec(projection.Reduce, "avg", "")
	s.Reducer = projection.Reducer{
		Initial:    "{'sum': 0.0, 'n': 0}",
		Expression: "{'sum': double(state.sum) + double(event.payload.amount) / 2.0, 'n': state.n + 1}",
	}
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			p := newProjection(t, s, store)
			for i, amount := range []int64{3, 1, 4} {
				handle(t, p, orderEvent(uint64(i+1), "", "LineAdded", amount))
			}
			b, found, err := store.Value(t.Context(), "ns/items", "avg")
			if err != nil || !found || string(b) != `{"n":3,"sum":4}` {
				t.Fatalf("value: got %s, %v, %v; want {\"n\":3,\"sum\":4}, true, nil", b, found, err)
			}
		})
	}
}

func TestReduceErrorDeadLettersTheEventAndKeepsTheState(t *testing.T) {
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			p := newProjection(t, orderTotals(), store)
			handle(t, p, orderEvent(1, "order-1", "LineAdded", 10))

			bad := orderEvent(2, "order-1", "LineAdded", 0)
			bad.Value = map[string]any{"amount": "ten"} // int + string: no such overload
			_, err := p.Handle(t.Context(), bad)
			if !engine.IsPermanent(err) || !strings.Contains(err.Error(), "no such overload") {
				t.Fatalf("handle a failing event: got %v, want a permanent error naming the overload", err)
			}
			// The router dead-letters it and settles it.
			if err := p.Settle(t.Context(), bad, true); err != nil {
				t.Fatalf("settle: %v", err)
			}
			wantDocument(t, store, `{"order-1": {"total": 10, "lines": 1, "status": "LineAdded"}}`)

			handle(t, p, orderEvent(3, "order-1", "OrderPaid", 5))
			wantDocument(t, store, `{"order-1": {"total": 15, "lines": 2, "status": "OrderPaid"}}`)
			if got := p.Stats(); got.Processed != 2 || got.DeadLettered != 1 {
				t.Errorf("stats: got processed %d, dead-lettered %d, want 2, 1", got.Processed, got.DeadLettered)
			}
			wantCheckpoint(t, p, readmodel.Checkpoint{"items": 3})
		})
	}
}

func TestReduceOverTheCostLimitIsPermanent(t *testing.T) {
	store := readmodel.NewMemory()
	s := spec(projection.Reduce, "k", "")
	s.Reducer = projection.Reducer{
		Initial:    "0",
		Expression: "event.payload.items.map(x, event.payload.text.contains('needle')).size()",
	}
	p := newProjection(t, s, store)
	msg := orderEvent(1, "", "Big", 0)
	msg.Value = map[string]any{"items": make([]any, 200), "text": strings.Repeat("hay", 100_000/3)}
	_, err := p.Handle(t.Context(), msg)
	if !engine.IsPermanent(err) || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Fatalf("handle: got %v, want a permanent cost limit error", err)
	}
	if _, found, _ := store.Value(t.Context(), "ns/items", "k"); found {
		t.Errorf("value after the failed event: found, want none")
	}
}

func TestReduceWithACancelledContextIsNotPermanent(t *testing.T) {
	s := spec(projection.Reduce, "k", "")
	s.Reducer = projection.Reducer{Initial: "0", Expression: "event.payload.items.all(x, x >= 0) ? 1 : 0"}
	p := newProjection(t, s, readmodel.NewMemory())
	items := make([]any, 10_000)
	for i := range items {
		items[i] = int64(i)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := p.Handle(ctx, engine.Message{Stream: "items", Sequence: 1, Value: map[string]any{"items": items}})
	if !errors.Is(err, context.Canceled) || engine.IsPermanent(err) {
		t.Fatalf("handle with a cancelled context: got %v, want context.Canceled, not permanent", err)
	}
}

func TestReduceOfAnUndecodedPayloadIsPermanent(t *testing.T) {
	p := newProjection(t, orderTotals(), readmodel.NewMemory())
	msg := orderEvent(1, "order-1", "LineAdded", 1)
	msg.Value = nil
	_, err := p.Handle(t.Context(), msg)
	if !engine.IsPermanent(err) || !strings.Contains(err.Error(), "the pipeline needs Deserialize") {
		t.Fatalf("handle: got %v, want a permanent error asking for Deserialize", err)
	}
}
