package natsstore_test

import (
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
)

// The NATS outbox holds nothing: what a handler returns is in its streams
// when Enqueue returns, and enqueuing it again (a retried handler, same
// IDs) stores nothing twice.
func TestTheNATSOutboxAppendsEachMessageToItsStreamAtOnceAndOnlyOnce(t *testing.T) {
	s := newEventStore(t, t.TempDir())
	ob := natsstore.NewOutbox(s)
	msgs := []engine.Message{
		{ID: "r-1", Stream: "shop/replies", Name: "Replied", Payload: []byte(`{}`)},
		{ID: "r-2", Stream: "shop/replies", Name: "Replied", Payload: []byte(`{}`)},
		{ID: "d-1", Stream: "shop/dead", Name: "Failed", Payload: []byte(`{}`)},
	}
	for range 2 {
		if err := ob.Enqueue(t.Context(), msgs); err != nil {
			t.Fatal(err)
		}
	}
	for stream, want := range map[string]int{"shop/replies": 2, "shop/dead": 1} {
		got, err := s.Read(t.Context(), stream, 0, 0)
		if err != nil || len(got) != want {
			t.Errorf("%s: %d events (%v), want %d", stream, len(got), err, want)
		}
	}
	if ob.Len() != 0 {
		t.Errorf("Len: %d, want 0", ob.Len())
	}
	if p, err := ob.Pending(t.Context(), 10); err != nil || len(p) != 0 {
		t.Errorf("Pending: %v, %v; want nothing", p, err)
	}
}
