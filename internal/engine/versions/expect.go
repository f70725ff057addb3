package versions

import (
	"errors"
	"fmt"
)

// Expect is an append's condition on its key's current version: the HTTP
// If-Match and If-None-Match headers.
type Expect struct {
	kind    expectKind
	version uint64
}

type expectKind uint8

const (
	anyVersion expectKind = iota
	exactly
	exists
	noEvents
)

var (
	// Any appends whatever the version (no condition).
	Any = Expect{}
	// Exists appends only to a key that has events (If-Match: *).
	Exists = Expect{kind: exists}
	// NoEvents appends only to a key without events (If-None-Match: *).
	NoEvents = Expect{kind: noEvents}
)

// Exactly appends only when the key's version is v (If-Match: "v"; "0" for
// a key without events).
func Exactly(v uint64) Expect { return Expect{kind: exactly, version: v} }

// Holds reports whether the condition holds for a key at version current.
func (e Expect) Holds(current uint64) bool {
	switch e.kind {
	case exactly:
		return current == e.version
	case exists:
		return current > 0
	case noEvents:
		return current == 0
	}
	return true
}

// String says the condition as a person would.
func (e Expect) String() string {
	switch e.kind {
	case exactly:
		return fmt.Sprintf("version %d", e.version)
	case exists:
		return "an existing key"
	case noEvents:
		return "a key without events"
	}
	return "any version"
}

// ErrVersionConflict is wrapped by *ConflictError.
var ErrVersionConflict = errors.New("version conflict")

// ConflictError says an append's condition did not hold; nothing of it was
// accepted.
type ConflictError struct {
	Stream, Key string
	Expected    Expect
	// Current is the key's version when the condition was checked.
	Current uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("key %q of stream %q is at version %d; the append expected %s", e.Key, e.Stream, e.Current, e.Expected)
}

// Unwrap lets errors.Is match ErrVersionConflict.
func (e *ConflictError) Unwrap() error { return ErrVersionConflict }
