package boltstore

import (
	"context"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// Ingest looks up a batch's IDs in one read transaction.
var _ versions.ManyLookup = (*EventStore)(nil)

func TestLookupManyFindsTheStoredIDsAmongThoseAsked(t *testing.T) {
	s := NewEventStore(openTestDB(t, t.TempDir()))
	ctx := context.Background()
	events := []engine.Message{
		{ID: "e1", Stream: "s", Name: "N", Key: "k", Payload: []byte(`{}`)},
		{ID: "e2", Stream: "s", Name: "N", Payload: []byte(`{}`)},
	}
	if _, err := s.Append(ctx, "s", eventstore.Any, events); err != nil {
		t.Fatal(err)
	}
	found, err := s.LookupMany(ctx, "s", []string{"e2", "nope", "", "e1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found["e1"].Version != 1 || found["e1"].Key != "k" || found["e2"].Sequence != 2 {
		t.Fatalf("LookupMany: %+v; want e1 (key k, version 1) and e2 (sequence 2)", found)
	}
	if found, err := s.LookupMany(ctx, "other", []string{"e1"}); err != nil || len(found) != 0 {
		t.Fatalf("another stream: %+v, %v; want nothing", found, err)
	}
}
