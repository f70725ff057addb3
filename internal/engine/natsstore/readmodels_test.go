package natsstore

import (
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel/readmodeltest"
)

// ownedReadModels are read models that close their connection with
// themselves, as a replica that stops does.
type ownedReadModels struct {
	*ReadModels
	conn *Conn
}

func (s ownedReadModels) Close() error {
	err := s.ReadModels.Close()
	s.conn.Close()
	return err
}

// openReadModels connects to the shared test server and opens the read
// models under prefix; they are closed when the test ends.
func openReadModels(t testing.TB, prefix string) ownedReadModels {
	t.Helper()
	c, err := Connect(t.Context(), Options{URL: natstest.Shared(t).ClientURL(), Prefix: prefix})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	s, err := NewReadModels(t.Context(), c)
	if err != nil {
		c.Close()
		t.Fatalf("NewReadModels: %v", err)
	}
	o := ownedReadModels{s, c}
	t.Cleanup(func() {
		if err := o.Close(); err != nil && !errors.Is(err, errReadModelsClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return o
}

func TestReadModelsConformance(t *testing.T) {
	readmodeltest.Run(t, readmodeltest.Features{Durable: true, ListCheckpoints: true}, func(t *testing.T, dir string) readmodel.Store {
		c, err := Connect(t.Context(), Options{URL: natstest.Shared(t).ClientURL(), Prefix: natstest.Prefix(dir)})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		s, err := NewReadModels(t.Context(), c)
		if err != nil {
			c.Close()
			t.Fatalf("NewReadModels: %v", err)
		}
		return ownedReadModels{s, c}
	})
}
