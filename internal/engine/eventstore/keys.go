package eventstore

import "github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"

// MaxKeyLen is the longest key a store keeps, in bytes: the contract's
// limit (docs/entities.md), so that every backend keeps the same keys.
const MaxKeyLen = 256

// KeyVersions numbers the new keyed events of one Append, in input order,
// and checks the versions they carry. A backend calls Next for each event
// it is about to store (duplicates by ID left out) before it writes
// anything, so a conflict stores nothing.
type KeyVersions struct {
	stream string
	// stored returns the key's version in the store.
	stored func(key string) (uint64, error)
	// next holds each key numbered so far and its version after the
	// events numbered so far.
	next map[string]uint64
}

// NewKeyVersions numbers keys of stream from the versions stored gives.
func NewKeyVersions(stream string, stored func(key string) (uint64, error)) KeyVersions {
	return KeyVersions{stream: stream, stored: stored}
}

// Next returns the version of e, a new event of the Append: 0 when it has
// no key, else one more than its key's version so far. When e carries
// another version than that, it returns a *KeyConflictError.
func (k *KeyVersions) Next(e *engine.Message) (uint64, error) {
	if e.Key == "" {
		return 0, nil
	}
	current, ok := k.next[e.Key]
	if !ok {
		var err error
		if current, err = k.stored(e.Key); err != nil {
			return 0, err
		}
	}
	if e.Version != 0 && e.Version != current+1 {
		return 0, &KeyConflictError{Stream: k.stream, Key: e.Key, Expected: e.Version - 1, Actual: current}
	}
	if k.next == nil {
		k.next = make(map[string]uint64)
	}
	k.next[e.Key] = current + 1
	return current + 1, nil
}

// Versions returns each key numbered and its version after the Append;
// nil when no event had a key.
func (k *KeyVersions) Versions() map[string]uint64 { return k.next }

// HasKeys reports whether any of events has a key: an Append without one
// needs no numbering.
func HasKeys(events []engine.Message) bool {
	for i := range events {
		if events[i].Key != "" {
			return true
		}
	}
	return false
}
