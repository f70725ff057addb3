package natsstore_test

import (
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore/eventstoretest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
)

// connect opens a connection to the shared test server under the prefix
// of dir, closed when the test ends.
func connect(t *testing.T, dir string) *natsstore.Conn {
	t.Helper()
	c, err := natsstore.Connect(t.Context(), natsstore.Options{URL: natstest.Shared(t).ClientURL(), Prefix: natstest.Prefix(dir)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func openEventStore(t *testing.T, dir string) eventstore.Store {
	t.Helper()
	s, err := natsstore.NewEventStore(t.Context(), connect(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEventStoreConformance(t *testing.T) {
	eventstoretest.Run(t, eventstoretest.Features{Durable: true, Compaction: true}, openEventStore)
}
