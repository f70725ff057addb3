package core_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/disk"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// diskEngine opens an engine on the data directory, not running: what it
// accepts stays in the outbox log. Closing the storage closes the engine.
func diskEngine(t *testing.T, dir string) (*core.Engine, *disk.Storage) {
	t.Helper()
	st, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, core.Config{Store: st.Store, Outbox: st.Outbox, ReadModels: st.ReadModels})
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E"})
	return e, st
}

func ingestOrder1(t *testing.T, e *core.Engine, expect versions.Expect, ids ...string) ([]engine.Message, error) {
	t.Helper()
	events := make([]core.Event, len(ids))
	for i, id := range ids {
		events[i] = core.Event{ID: id, Key: "order-1", Payload: []byte(`{}`)}
	}
	return e.IngestIf(context.Background(), "orders", events, expect)
}

// Events accepted before a restart and still in the outbox keep their
// versions and ids: the next append continues after them, a read of the key
// shows them before they are stored, and a retry of one answers it.
func TestAcceptedEventsStillInTheOutboxKeepTheirVersionsAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	before, st := diskEngine(t, dir)
	if _, err := ingestOrder1(t, before, versions.NoEvents, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil { // never ran: both events are only in the outbox log
		t.Fatal(err)
	}

	after, st := diskEngine(t, dir)
	t.Cleanup(func() { _ = st.Close() }) // after Run has returned
	if _, err := ingestOrder1(t, after, versions.Exactly(0), "c"); !errors.Is(err, versions.ErrVersionConflict) {
		t.Fatalf("If-Match 0 after the restart: got %v, want a conflict at version 2", err)
	}
	events, version, err := after.ReadKey(context.Background(), "orders", "order-1", 0, 10)
	if err != nil || version != 2 || len(events) != 2 || events[0].ID != "a" {
		t.Fatalf("read before anything is stored: %d events at version %d, %v", len(events), version, err)
	}
	msgs, err := ingestOrder1(t, after, versions.Exactly(2), "c")
	if err != nil || msgs[0].Version != 3 {
		t.Fatalf("append after the restored ones: %+v, %v; want version 3", msgs, err)
	}

	runEngine(t, after)
	enginetest.Eventually(t, "the three events stored", func() bool {
		stored, err := after.ReadStream(context.Background(), "orders", 0, 10)
		return err == nil && len(stored) == 3
	})
	// A retry of b, whatever its condition, answers b once it is stored.
	msgs, err = ingestOrder1(t, after, versions.Exactly(1), "b")
	if err != nil || msgs[0].Version != 2 {
		t.Fatalf("retry of b: %+v, %v; want its version 2", msgs, err)
	}
	stored, _ := after.ReadStream(context.Background(), "orders", 0, 10)
	for i, m := range stored {
		if m.Key != "order-1" || m.Version != uint64(i+1) {
			t.Fatalf("stored event %d: key %q version %d", i, m.Key, m.Version)
		}
	}
}
