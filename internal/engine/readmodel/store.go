// Package readmodel stores projections' read models: one JSON document per
// projection, a map from key to value, saved together with the projection's
// checkpoint.
package readmodel

import (
	"context"
	"errors"
)

// ErrNotFound is returned for a projection that has no document.
var ErrNotFound = errors.New("read model not found")

// Checkpoint is the last sequence a projection has applied, per stream.
type Checkpoint map[string]uint64

// Op is how a Change alters the value under its key.
type Op int

const (
	// OpSet replaces the value with Change.Value.
	OpSet Op = iota + 1
	// OpAppend appends Change.Value to the list under the key (a missing key
	// is an empty list).
	OpAppend
	// OpIncrement adds Change.Delta to the number under the key (a missing
	// key is 0).
	OpIncrement
)

// Change alters one key of a read model.
type Change struct {
	Key string
	Op  Op
	// Value is JSON-compatible: map[string]any, []any, string, float64,
	// int64, bool or nil.
	Value any
	Delta int64
}

// Store keeps read models and their checkpoints.
type Store interface {
	// Apply applies changes to projection's document and records cp as its
	// checkpoint, in one atomic step: a reader or a restart sees both or
	// neither. Streams absent from cp keep their checkpoint. The projection's
	// document is created when missing. Apply keeps the Values inside
	// changes but neither the changes slice nor cp, which callers reuse.
	Apply(ctx context.Context, projection string, changes []Change, cp Checkpoint) error
	// Document returns the projection's read model encoded as a JSON object.
	Document(ctx context.Context, projection string) ([]byte, error)
	// Value returns the value under key in the projection's document,
	// encoded as JSON as Document encodes it, and whether the key has one
	// (a key set to null has one). It sees every Apply that returned before
	// it was called. An unknown projection has no keys.
	Value(ctx context.Context, projection, key string) (value []byte, found bool, err error)
	// Checkpoint returns the projection's checkpoint; an unknown projection
	// has an empty one.
	Checkpoint(ctx context.Context, projection string) (Checkpoint, error)
	// Delete removes the projection's document and checkpoint.
	Delete(ctx context.Context, projection string) error
	// Move makes from's document and checkpoint those of to, in one atomic
	// step: a reader of to sees its old document or the moved one, never
	// neither, and from is gone afterwards. What to held before is dropped;
	// a to that does not exist is created. A from that does not exist is
	// ErrNotFound and changes nothing. Callers apply to neither projection
	// while Move runs.
	Move(ctx context.Context, from, to string) error
	// Close releases the store.
	Close() error
}
