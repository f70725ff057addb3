package versions_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// storeDouble is the event store as the table sees it: what the processor
// has appended, by stream and key. store plays the processor.
type storeDouble struct {
	mu     sync.Mutex
	byKey  map[[2]string][]engine.Message
	byID   map[[2]string]engine.Message
	outbox []engine.Message // enqueued, not yet stored
	reads  int
}

func newStoreDouble() *storeDouble {
	return &storeDouble{byKey: map[[2]string][]engine.Message{}, byID: map[[2]string]engine.Message{}}
}

func (s *storeDouble) KeyVersion(_ context.Context, stream, key string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	evs := s.byKey[[2]string{stream, key}]
	if len(evs) == 0 {
		return 0, nil
	}
	return evs[len(evs)-1].Version, nil
}

func (s *storeDouble) Lookup(_ context.Context, stream, id string) (engine.Message, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.byID[[2]string{stream, id}]
	return m, ok, nil
}

func (s *storeDouble) ReadKey(_ context.Context, stream, key string, after uint64, limit int) ([]engine.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []engine.Message
	for _, m := range s.byKey[[2]string{stream, key}] {
		if m.Version > after && len(out) < limit {
			out = append(out, m)
		}
	}
	return out, nil
}

// enqueue is the outbox: it keeps what the table hands it.
func (s *storeDouble) enqueue(msgs []engine.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outbox = append(s.outbox, msgs...)
	return nil
}

// store moves everything enqueued into the store, as the processor does,
// dropping repeated IDs as the store does, and tells the table.
func (s *storeDouble) store(t *testing.T, table *versions.Table) {
	t.Helper()
	s.mu.Lock()
	pending := s.outbox
	s.outbox = nil
	var stored []engine.Message
	for _, m := range pending {
		if prior, ok := s.byID[[2]string{m.Stream, m.ID}]; ok {
			stored = append(stored, prior)
			continue
		}
		if m.Key != "" {
			k := [2]string{m.Stream, m.Key}
			if want := uint64(len(s.byKey[k])) + 1; m.Version != want {
				s.mu.Unlock()
				t.Fatalf("event %q of key %q reached the store with version %d, want %d", m.ID, m.Key, m.Version, want)
			}
			s.byKey[k] = append(s.byKey[k], m)
		}
		s.byID[[2]string{m.Stream, m.ID}] = m
		stored = append(stored, m)
	}
	s.mu.Unlock()
	table.Stored(stored)
}

func events(key string, ids ...string) []engine.Message {
	out := make([]engine.Message, len(ids))
	for i, id := range ids {
		out[i] = engine.Message{ID: id, Stream: "orders", Key: key, Name: "E"}
	}
	return out
}

func accept(t *testing.T, table *versions.Table, s *storeDouble, expect versions.Expect, evs []engine.Message) ([]engine.Message, error) {
	t.Helper()
	return table.Accept(context.Background(), versions.Request{Stream: "orders", Events: evs, Expect: expect}, s.enqueue)
}

func mustAccept(t *testing.T, table *versions.Table, s *storeDouble, expect versions.Expect, evs []engine.Message) []engine.Message {
	t.Helper()
	views, err := accept(t, table, s, expect, evs)
	if err != nil {
		t.Fatalf("accept %v: %v", ids(evs), err)
	}
	return views
}

func ids(msgs []engine.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func versionsOf(msgs []engine.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Version
	}
	return out
}

func wantVersions(t *testing.T, what string, msgs []engine.Message, want ...uint64) {
	t.Helper()
	if got := versionsOf(msgs); !slices.Equal(got, want) {
		t.Fatalf("%s: versions %v, want %v", what, got, want)
	}
}

func wantConflict(t *testing.T, err error, current uint64) {
	t.Helper()
	var c *versions.ConflictError
	if !errors.As(err, &c) || !errors.Is(err, versions.ErrVersionConflict) {
		t.Fatalf("got %v, want a *versions.ConflictError", err)
	}
	if c.Current != current {
		t.Fatalf("conflict says current version %d, want %d", c.Current, current)
	}
}
