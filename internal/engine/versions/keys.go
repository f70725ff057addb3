package versions

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// keyShard holds the entries of the keys that hash to it.
type keyShard struct {
	mu      sync.Mutex
	entries map[streamKey]*keyEntry
}

// keyEntry is what the table knows of one key beyond the store. The shard's
// mutex guards every field but lock.
type keyEntry struct {
	// lock is held by the request appending to the key, across its
	// enqueue. A channel rather than a mutex, so a waiter can give up
	// when its context ends.
	lock chan struct{}
	// refs counts requests holding or waiting for lock; an entry with none
	// and nothing pending is dropped.
	refs int
	// loaded says version is known; until then the store has it.
	loaded bool
	// version is the newest accepted version.
	version uint64
	// stored is the newest version the store has confirmed.
	stored uint64
	// pending are the accepted events the store has not confirmed, by
	// version: what a read of the key adds to the store's answer.
	pending []engine.Message
}

// heldKey is a key a request holds while it appends.
type heldKey struct {
	k     streamKey
	entry *keyEntry
}

func (t *Table) keyShardOf(k streamKey) *keyShard { return &t.keys[t.shard(k)] }

// lockKeys takes the keys of the fresh events, in sorted order so that two
// requests over the same keys cannot each hold one the other waits for, and
// loads the version of any key the table does not know.
func (t *Table) lockKeys(ctx context.Context, stream string, msgs []engine.Message) ([]heldKey, error) {
	var names []string
	for i := range msgs {
		if k := msgs[i].Key; k != "" && !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	held := make([]heldKey, 0, len(names))
	for _, name := range names {
		k := streamKey{stream, name}
		s := t.keyShardOf(k)
		s.mu.Lock()
		e := s.entries[k]
		if e == nil {
			e = &keyEntry{lock: make(chan struct{}, 1)}
			s.entries[k] = e
		}
		e.refs++
		s.mu.Unlock()
		select {
		case e.lock <- struct{}{}:
		case <-ctx.Done():
			t.unref(k, e)
			t.unlockKeys(held)
			return nil, ctx.Err()
		}
		held = append(held, heldKey{k, e})
		if err := t.load(ctx, k, e); err != nil {
			t.unlockKeys(held)
			return nil, err
		}
	}
	return held, nil
}

// load reads the key's version from the store unless the table knows it.
// The caller holds the key, and an entry that is not loaded has nothing
// pending, so the store's version is the key's.
func (t *Table) load(ctx context.Context, k streamKey, e *keyEntry) error {
	s := t.keyShardOf(k)
	s.mu.Lock()
	loaded := e.loaded
	s.mu.Unlock()
	if loaded {
		return nil
	}
	v, err := t.store.KeyVersion(ctx, k.stream, k.name)
	if err != nil {
		return fmt.Errorf("read the version of key %q of stream %q: %w", k.name, k.stream, err)
	}
	s.mu.Lock()
	e.loaded, e.version, e.stored = true, v, max(e.stored, v)
	s.mu.Unlock()
	return nil
}

// unlockKeys gives the keys back.
func (t *Table) unlockKeys(held []heldKey) {
	for _, h := range held {
		<-h.entry.lock
		t.unref(h.k, h.entry)
	}
}

func (t *Table) unref(k streamKey, e *keyEntry) {
	s := t.keyShardOf(k)
	s.mu.Lock()
	e.refs--
	t.dropIfIdleLocked(s, k, e)
	s.mu.Unlock()
}

func (t *Table) dropIfIdleLocked(s *keyShard, k streamKey, e *keyEntry) {
	if e.refs == 0 && len(e.pending) == 0 {
		delete(s.entries, k)
	}
}

func entryOf(held []heldKey, key string) *keyEntry {
	for _, h := range held {
		if h.k.name == key {
			return h.entry
		}
	}
	return nil
}

// checkAndNumber checks the request's condition against its key's version
// and gives the new events their versions, in request order.
func (t *Table) checkAndNumber(stream string, expect Expect, msgs []engine.Message, held []heldKey) error {
	if len(held) == 0 {
		for i := range msgs {
			msgs[i].Version = 0
		}
		return nil
	}
	next := make(map[string]uint64, len(held))
	for _, h := range held {
		s := t.keyShardOf(h.k)
		s.mu.Lock()
		next[h.k.name] = h.entry.version
		s.mu.Unlock()
	}
	if expect != Any {
		key := msgs[0].Key
		if current := next[key]; !expect.Holds(current) {
			return &ConflictError{Stream: stream, Key: key, Expected: expect, Current: current}
		}
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Key == "" {
			m.Version = 0
			continue
		}
		next[m.Key]++
		m.Version = next[m.Key]
	}
	return nil
}

// accepted records each key's new version and pending events.
func (t *Table) accepted(stream string, msgs []engine.Message, held []heldKey) {
	for i := range msgs {
		m := &msgs[i]
		if m.Key == "" {
			continue
		}
		e := entryOf(held, m.Key)
		s := t.keyShardOf(streamKey{stream, m.Key})
		s.mu.Lock()
		e.version = m.Version
		if m.Version > e.stored { // the processor may have been quicker
			e.pending = append(e.pending, *m)
		}
		s.mu.Unlock()
	}
}

// keyStored drops the key's pending events up to m's version.
func (t *Table) keyStored(m *engine.Message) {
	k := streamKey{m.Stream, m.Key}
	s := t.keyShardOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[k]
	if e == nil {
		return
	}
	e.stored = max(e.stored, m.Version)
	n := 0
	for n < len(e.pending) && e.pending[n].Version <= e.stored {
		n++
	}
	clear(e.pending[:n]) // hold no payload the store has
	e.pending = e.pending[n:]
	t.dropIfIdleLocked(s, k, e)
}

// keyRestored records an event accepted before a restart.
func (t *Table) keyRestored(m *engine.Message) {
	k := streamKey{m.Stream, m.Key}
	s := t.keyShardOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[k]
	if e == nil {
		e = &keyEntry{lock: make(chan struct{}, 1)}
		s.entries[k] = e
	}
	e.loaded = true
	e.version = max(e.version, m.Version)
	e.pending = append(e.pending, *m)
}

// ReadKey returns up to limit events of the key with a version above after,
// in version order, and the key's current version: every event accepted
// before the call is included, stored or not (read-your-writes).
func (t *Table) ReadKey(ctx context.Context, stream, key string, after uint64, limit int) ([]engine.Message, uint64, error) {
	k := streamKey{stream, key}
	s := t.keyShardOf(k)
	// The pending events are taken before the store is read: one the
	// processor stores in between is then in the store's answer, and one
	// accepted in between was not acknowledged before the call.
	s.mu.Lock()
	var pending []engine.Message
	var version uint64
	loaded := false
	if e := s.entries[k]; e != nil {
		for _, p := range e.pending {
			if p.Version > after {
				pending = append(pending, p)
			}
		}
		version, loaded = e.version, e.loaded
	}
	s.mu.Unlock()

	events, err := t.store.ReadKey(ctx, stream, key, after, limit)
	if err != nil {
		return nil, 0, err
	}
	last := after
	if len(events) > 0 {
		last = events[len(events)-1].Version
	}
	for _, p := range pending {
		if len(events) >= limit {
			break
		}
		if p.Version > last {
			events = append(events, p)
			last = p.Version
		}
	}
	if !loaded {
		if version, err = t.store.KeyVersion(ctx, stream, key); err != nil {
			return nil, 0, err
		}
	}
	if len(events) > 0 {
		version = max(version, events[len(events)-1].Version)
	}
	return events, version, nil
}

// KeyVersion returns the key's current version, counting events accepted
// and not yet stored.
func (t *Table) KeyVersion(ctx context.Context, stream, key string) (uint64, error) {
	k := streamKey{stream, key}
	s := t.keyShardOf(k)
	s.mu.Lock()
	e := s.entries[k]
	if e != nil && e.loaded {
		v := e.version
		s.mu.Unlock()
		return v, nil
	}
	s.mu.Unlock()
	return t.store.KeyVersion(ctx, stream, key)
}
