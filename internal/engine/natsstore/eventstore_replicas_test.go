package natsstore_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natsstoretest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
)

// Two stores on one prefix are two manager replicas: each appends to the
// same stream, some events keyed, some IDs sent to both.
func TestTwoStoresAppendingToOneStreamKeepSequencesKeyVersionsAndIDsExact(t *testing.T) {
	dir := t.TempDir()
	stores := []*natsstore.EventStore{newEventStore(t, dir), newEventStore(t, dir)}
	const perStore, keys = 200, 5
	var wg sync.WaitGroup
	errs := make(chan error, 2*perStore)
	for si, s := range stores {
		wg.Go(func() {
			for i := range perStore {
				ev := engine.Message{
					ID:      fmt.Sprintf("s%d-%d", si, i),
					Name:    "Happened",
					Key:     fmt.Sprintf("k%d", i%keys),
					Payload: []byte(`{}`),
				}
				if i%10 == 0 {
					ev.ID = fmt.Sprintf("both-%d", i) // sent to both replicas
				}
				if _, err := s.Append(t.Context(), "orders", eventstore.Any, []engine.Message{ev}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := stores[0].Read(t.Context(), "orders", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2*perStore - perStore/10; len(got) != want {
		t.Errorf("stored %d events, want %d (the IDs sent to both once)", len(got), want)
	}
	seen := map[string]bool{}
	versions := map[string]uint64{}
	for i, m := range got {
		if m.Sequence != uint64(i+1) {
			t.Fatalf("event %d has sequence %d", i, m.Sequence)
		}
		if seen[m.ID] {
			t.Errorf("ID %q stored twice", m.ID)
		}
		seen[m.ID] = true
		if m.Version != versions[m.Key]+1 {
			t.Errorf("event %q of key %q has version %d after %d", m.ID, m.Key, m.Version, versions[m.Key])
		}
		versions[m.Key] = m.Version
	}
}

// A writer that crashed after its append and before indexing it leaves an
// event above the index's watermark: a store started later still finds
// its ID, so a retry of it is not stored again.
func TestAnIDAppendedButNotIndexedIsStillFoundAfterACrash(t *testing.T) {
	dir := t.TempDir()
	s := newEventStore(t, dir)
	if _, err := s.Append(t.Context(), "orders", eventstore.Any, []engine.Message{{ID: "first", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	// What a crashed writer leaves: the event in the stream, no index entry.
	c := connect(t, dir)
	crashed := engine.Message{ID: "retried", Name: "Happened", Payload: []byte(`{}`)}
	prefix := c.Options().Prefix
	if _, err := c.JS.PublishMsg(t.Context(), &nats.Msg{
		Subject: prefix + ".es.orders.u",
		Data:    codec.AppendMessage(nil, &crashed),
		Header:  nats.Header{"Nats-Expected-Last-Sequence": []string{"1"}},
	}); err != nil {
		t.Fatal(err)
	}

	later := newEventStore(t, dir)
	if m, ok, err := later.Lookup(t.Context(), "orders", "retried"); err != nil || !ok || m.Sequence != 2 {
		t.Fatalf("Lookup: got %v %v %v, want the event at sequence 2", m, ok, err)
	}
	res, err := later.Append(t.Context(), "orders", eventstore.Any, []engine.Message{{ID: "retried", Payload: []byte(`{}`)}})
	if err != nil || res.Appended != 0 || res.Events[0].Sequence != 2 {
		t.Fatalf("retry: got %+v, %v, want nothing appended and the event at 2", res, err)
	}
	// The old store learns of it too when it appends next.
	res, err = s.Append(t.Context(), "orders", eventstore.Any, []engine.Message{{ID: "retried", Payload: []byte(`{}`)}})
	if err != nil || res.Appended != 0 {
		t.Fatalf("retry at the first store: got %+v, %v, want nothing appended", res, err)
	}
}

func newEventStore(t *testing.T, dir string) *natsstore.EventStore {
	t.Helper()
	s, err := natsstore.NewEventStore(t.Context(), connect(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Two replicas append to one single-replica stream: appends pipelined
// behind others in flight must not be stored on a plan an earlier refusal
// made stale.
func TestTwoStoresAppendingIfMatchBesideUnkeyedAppendsStoreEachKeyVersionOnce(t *testing.T) {
	natsstoretest.TwoReplicasAppendIfMatchBesideUnkeyedAppends(t, natsstore.Options{URL: natstest.Start(t, natstest.Options{}).ClientURL()})
}
