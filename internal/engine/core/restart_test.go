package core_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// A manager killed with accepted events still in its outbox comes back with
// them in the outbox and not in the store. Until the processor has stored
// them, the new engine must still count their versions and know their IDs,
// or its first appends would reuse acknowledged versions.
func TestANewEngineKeepsTheVersionsAndIDsOfEventsLeftInTheOutbox(t *testing.T) {
	ctx := context.Background()
	ob, store := outbox.NewMemory(0), eventstore.NewMemory()
	accounts := core.StreamSpec{Name: "accounts", DefaultEventName: "Deposited"}
	deposit := func(id string) []core.Event {
		return []core.Event{{ID: id, Key: "acct-1", Payload: []byte(`{}`)}}
	}

	before := newEngine(t, core.Config{Outbox: ob, Store: store}) // never run: nothing is stored
	mustApplyStream(t, before, accounts)
	for i, id := range []string{"d1", "d2"} {
		if _, err := before.IngestIf(ctx, "accounts", deposit(id), versions.Exactly(uint64(i))); err != nil {
			t.Fatalf("append %s before the restart: %v", id, err)
		}
	}

	after := newEngine(t, core.Config{Outbox: ob, Store: store})
	mustApplyStream(t, after, accounts)
	events, version, err := after.ReadKey(ctx, "accounts", "acct-1", 0, 10)
	if err != nil || version != 2 || len(events) != 2 || events[0].ID != "d1" || events[1].ID != "d2" {
		t.Fatalf("read after the restart: %d events, version %d, %v; want d1 and d2 at version 2", len(events), version, err)
	}
	_, err = after.IngestIf(ctx, "accounts", deposit("d3"), versions.Exactly(1))
	if conflict := (*versions.ConflictError)(nil); !errors.As(err, &conflict) || conflict.Current != 2 {
		t.Fatalf("If-Match 1 after the restart: got %v, want a conflict at version 2", err)
	}
	retried, err := after.IngestIf(ctx, "accounts", deposit("d2"), versions.Exactly(1))
	if err != nil || retried[0].Version != 2 {
		t.Fatalf("retry of d2 after the restart: got %+v, %v; want its original version 2", retried, err)
	}
	next, err := after.IngestIf(ctx, "accounts", deposit("d3"), versions.Exactly(2))
	if err != nil || next[0].Version != 3 {
		t.Fatalf("If-Match 2 after the restart: got %+v, %v; want version 3", next, err)
	}

	runEngine(t, after)
	enginetest.Eventually(t, "the processor to store the key's 3 events", func() bool {
		v, err := store.KeyVersion(ctx, "accounts", "acct-1")
		return err == nil && v == 3
	})
	stored, err := store.ReadKey(ctx, "accounts", "acct-1", 0, 10)
	if err != nil || len(stored) != 3 {
		t.Fatalf("the store holds %d events of the key (%v), want 3: d2 is stored once", len(stored), err)
	}
	for i, id := range []string{"d1", "d2", "d3"} {
		if stored[i].ID != id || stored[i].Version != uint64(i+1) {
			t.Fatalf("stored event %d: %s at version %d, want %s at version %d", i, stored[i].ID, stored[i].Version, id, i+1)
		}
	}
}
