package readmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
)

// errClosed is returned by a Memory store after Close.
var errClosed = errors.New("read model store is closed")

// Memory is a Store that keeps read models in process memory. It is the
// backend for tests and --storage=memory; everything is lost on restart.
//
// Values passed to Apply are stored by reference, not copied: callers must
// not change a Change.Value (or anything it refers to) after Apply. The
// engine's messages already treat decoded values as read-only.
type Memory struct {
	mu     sync.RWMutex
	models map[string]*model
	closed bool
}

// model is one projection's document and checkpoint, guarded by Memory.mu.
type model struct {
	doc map[string]any
	cp  Checkpoint
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{models: make(map[string]*model)}
}

// usable says why a call cannot run: its context ended or the store
// closed. Callers hold m.mu.
func (m *Memory) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.closed {
		return errClosed
	}
	return nil
}

// Apply validates every change against the current document first and only
// then applies them and merges cp, all under one lock: a type clash leaves
// the document and checkpoint as they were, and no reader sees the changes
// without the checkpoint. Each change costs O(1) (appends are amortised).
func (m *Memory) Apply(ctx context.Context, projection string, changes []Change, cp Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usable(ctx); err != nil {
		return err
	}
	md := m.models[projection]
	var doc map[string]any
	if md != nil {
		doc = md.doc
	}
	if err := Validate(changes, func(i int) (Kind, error) { return storedKind(doc[changes[i].Key]), nil }); err != nil {
		return fmt.Errorf("apply to read model %q: %w", projection, err)
	}
	if md == nil {
		md = &model{doc: make(map[string]any, len(changes)), cp: make(Checkpoint, len(cp))}
		m.models[projection] = md
	}
	for _, c := range changes {
		apply(md.doc, c)
	}
	maps.Copy(md.cp, cp)
	return nil
}

// Document returns the projection's document as a JSON object.
func (m *Memory) Document(ctx context.Context, projection string) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.usable(ctx); err != nil {
		return nil, err
	}
	md, ok := m.models[projection]
	if !ok {
		return nil, fmt.Errorf("read model %q: %w", projection, ErrNotFound)
	}
	b, err := json.Marshal(md.doc)
	if err != nil {
		return nil, fmt.Errorf("encode read model %q: %w", projection, err)
	}
	return b, nil
}

// Value returns the value under key, encoded as Document encodes it.
func (m *Memory) Value(ctx context.Context, projection, key string) ([]byte, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.usable(ctx); err != nil {
		return nil, false, err
	}
	md, ok := m.models[projection]
	if !ok {
		return nil, false, nil
	}
	v, ok := md.doc[key]
	if !ok {
		return nil, false, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false, fmt.Errorf("encode key %q of read model %q: %w", key, projection, err)
	}
	return b, true, nil
}

// Checkpoint returns a copy of the projection's checkpoint; an unknown
// projection has an empty one.
func (m *Memory) Checkpoint(ctx context.Context, projection string) (Checkpoint, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.usable(ctx); err != nil {
		return nil, err
	}
	md, ok := m.models[projection]
	if !ok {
		return Checkpoint{}, nil
	}
	return maps.Clone(md.cp), nil
}

// Delete removes the projection's document and checkpoint. Deleting an
// unknown projection is not an error.
func (m *Memory) Delete(ctx context.Context, projection string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usable(ctx); err != nil {
		return err
	}
	delete(m.models, projection)
	return nil
}

// Move gives from's document and checkpoint to to under one lock.
func (m *Memory) Move(ctx context.Context, from, to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usable(ctx); err != nil {
		return err
	}
	md, ok := m.models[from]
	if !ok {
		return fmt.Errorf("move read model %q: %w", from, ErrNotFound)
	}
	m.models[to] = md
	delete(m.models, from)
	return nil
}

// Close drops every read model. Later calls return an error; closing again
// is a no-op.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.models = nil
	return nil
}

var _ Store = (*Memory)(nil)
