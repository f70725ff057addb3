package natsstore_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// natsEngine is an engine whose events live in JetStream under dir's
// prefix, as --storage=nats builds it; it runs until the test ends.
func natsEngine(t *testing.T, dir string) *core.Engine {
	t.Helper()
	store := newEventStore(t, dir)
	e, err := core.New(core.Config{
		Store:           store,
		Outbox:          natsstore.NewOutbox(store),
		Appender:        store,
		PollingInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	enginebench.RunEngine(t, e)
	return e
}

func TestIngestOnNATSIsStoredAtOnceAndReachesAProjection(t *testing.T) {
	dir := t.TempDir()
	e := natsEngine(t, dir)
	if err := e.ApplyStream(core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPlaced"}); err != nil {
		t.Fatal(err)
	}
	if err := e.ApplyProjection(t.Context(), core.ProjectionSpec{Spec: projection.Spec{
		Name: "shop/count", Streams: []string{"shop/orders"}, StartFrom: projection.Beginning, Type: projection.Count, Key: "n",
	}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		msgs, err := e.Ingest(t.Context(), "shop/orders", []core.Event{{Payload: []byte(fmt.Sprintf(`{"i":%d}`, i))}})
		if err != nil {
			t.Fatal(err)
		}
		// The 202 comes after JetStream's ack: the event is readable at once,
		// from another connection too.
		if msgs[0].Sequence != uint64(i+1) {
			t.Fatalf("event %d: sequence %d, want %d", i, msgs[0].Sequence, i+1)
		}
	}
	other := newEventStore(t, dir)
	if v, err := other.Version(t.Context(), "shop/orders"); err != nil || v != 20 {
		t.Fatalf("Version from another connection: %d, %v; want 20", v, err)
	}
	enginetest.Eventually(t, "the count to reach 20", func() bool {
		doc, err := e.Query(t.Context(), "shop/count")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]float64
		_ = json.Unmarshal(doc, &m)
		return m["n"] == 20
	})
}

func TestKeyConditionsOnNATSAreCheckedByTheStore(t *testing.T) {
	dir := t.TempDir()
	e := natsEngine(t, dir)
	if err := e.ApplyStream(core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPlaced"}); err != nil {
		t.Fatal(err)
	}
	ingest := func(expect versions.Expect, id string) error {
		_, err := e.IngestIf(t.Context(), "shop/orders", []core.Event{{ID: id, Key: "o-1", Payload: []byte(`{}`)}}, expect)
		return err
	}
	if err := ingest(versions.NoEvents, "a"); err != nil {
		t.Fatal(err)
	}
	var conflict *versions.ConflictError
	if err := ingest(versions.NoEvents, "b"); !errors.As(err, &conflict) || conflict.Current != 1 {
		t.Fatalf("If-None-Match on a key with events: got %v, want a conflict at version 1", err)
	}
	if err := ingest(versions.Exactly(1), "c"); err != nil {
		t.Fatal(err)
	}
	if err := ingest(versions.Exactly(1), "d"); !errors.As(err, &conflict) || conflict.Current != 2 {
		t.Fatalf("If-Match on an old version: got %v, want a conflict at version 2", err)
	}
	// A retry of an accepted event is not a conflict: it was stored.
	if err := ingest(versions.Exactly(1), "c"); err != nil {
		t.Fatalf("retry of an accepted conditional append: %v", err)
	}
	// A second engine on the same JetStream (another replica) sees the
	// versions the first one appended.
	e2 := natsEngine(t, dir)
	if err := e2.ApplyStream(core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPlaced"}); err != nil {
		t.Fatal(err)
	}
	msgs, err := e2.IngestIf(t.Context(), "shop/orders", []core.Event{{ID: "e", Key: "o-1", Payload: []byte(`{}`)}}, versions.Exactly(2))
	if err != nil || msgs[0].Version != 3 {
		t.Fatalf("append at the other replica: %v, %v; want version 3", msgs, err)
	}
}

// A replica that is not the leader (Standby) takes events and answers
// queries from the shared storage, and runs nothing until it is elected.
func TestAStandbyEngineTakesEventsAndQueriesAndRunsProjectionsOnlyOnceElected(t *testing.T) {
	dir := t.TempDir()
	readModels, err := natsstore.NewReadModels(t.Context(), connect(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = readModels.Close() })
	newEngine := func(standby bool) *core.Engine {
		store := newEventStore(t, dir)
		e, err := core.New(core.Config{
			Store: store, Outbox: natsstore.NewOutbox(store), Appender: store, ReadModels: readModels,
			Standby: standby, PollingInterval: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range []error{
			e.ApplyStream(core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPlaced"}),
			e.ApplyProjection(t.Context(), core.ProjectionSpec{Spec: projection.Spec{
				Name: "shop/last", Streams: []string{"shop/orders"}, StartFrom: projection.Latest, Type: projection.Count, Key: "n",
			}}),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		return e
	}
	standby := newEngine(true)
	if cp, _ := readModels.Checkpoint(t.Context(), "shop/last"); len(cp) != 0 {
		t.Fatalf("a standby engine wrote the projection's checkpoint: %v", cp)
	}
	if _, err := standby.Ingest(t.Context(), "shop/orders", []core.Event{{Payload: []byte(`{}`)}}); err != nil {
		t.Fatalf("ingest at the standby: %v", err)
	}
	if doc, err := standby.Query(t.Context(), "shop/last"); err != nil || string(doc) != "{}" {
		t.Fatalf("query at the standby: %s, %v", doc, err)
	}
	if st, err := standby.ProjectionStats(t.Context(), "shop/last"); err != nil || st.Processed != 0 {
		t.Fatalf("stats at the standby: %+v, %v", st, err)
	}

	// Elected: Run starts the recorded projection, from the stream's end
	// (StartFrom Latest), and it folds what comes next.
	enginebench.RunEngine(t, standby)
	enginetest.Eventually(t, "the projection to start at the stream's end", func() bool {
		cp, _ := readModels.Checkpoint(t.Context(), "shop/last")
		return cp["shop/orders"] == 1
	})
	for range 3 {
		if _, err := standby.Ingest(t.Context(), "shop/orders", []core.Event{{Payload: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	enginetest.Eventually(t, "the count to reach 3", func() bool {
		doc, _ := standby.Query(t.Context(), "shop/last")
		return string(doc) == `{"n":3}`
	})
}
