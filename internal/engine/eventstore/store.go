// Package eventstore is the append-only log of every stream's events.
package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// ExpectedVersion is the optimistic-concurrency check of an Append: the
// stream's last sequence the caller expects, or one of Any and NoStream.
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version.
	Any ExpectedVersion = -1
	// NoStream appends only when the stream holds no event yet.
	NoStream ExpectedVersion = 0
)

// Exactly expects the stream's last sequence to be n.
func Exactly(n uint64) ExpectedVersion { return ExpectedVersion(n) }

// ErrWrongExpectedVersion is wrapped by *ConflictError and *KeyConflictError.
var ErrWrongExpectedVersion = errors.New("wrong expected version")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("event store closed")

// ErrUnavailable is wrapped by the errors of a store that cannot reach its
// storage for now (a NATS server away, a leader election under way):
// whether the call took effect is unknown, and a retry with the same event
// IDs stores nothing twice. The HTTP API answers it with 503.
var ErrUnavailable = errors.New("event store unavailable")

// ConflictError says an Append's expected version did not hold.
// errors.Is(err, ErrWrongExpectedVersion) is true for it.
type ConflictError struct {
	Stream   string
	Expected ExpectedVersion
	Actual   uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("append to stream %q: expected version %d, actual %d", e.Stream, e.Expected, e.Actual)
}

// Unwrap lets errors.Is match ErrWrongExpectedVersion.
func (e *ConflictError) Unwrap() error { return ErrWrongExpectedVersion }

// KeyConflictError says an event of an Append carried a version that was
// not its key's next one; nothing of the Append was stored.
// errors.Is(err, ErrWrongExpectedVersion) is true for it.
type KeyConflictError struct {
	Stream string
	Key    string
	// Expected is the key's version the refused event was to follow (its
	// Version minus one).
	Expected uint64
	// Actual is the key's version it would have followed: the stored one
	// plus the call's earlier new events of the key.
	Actual uint64
}

func (e *KeyConflictError) Error() string {
	return fmt.Sprintf("append to key %q of stream %q: expected version %d, actual %d", e.Key, e.Stream, e.Expected, e.Actual)
}

// Unwrap lets errors.Is match ErrWrongExpectedVersion.
func (e *KeyConflictError) Unwrap() error { return ErrWrongExpectedVersion }

// AppendResult reports what an Append stored.
type AppendResult struct {
	// Events are the appended events as stored, in input order, with
	// Sequence, Position, Time and (for keyed events) Version set. An event
	// whose ID the stream already held is reported as the stored one and
	// was not appended again.
	Events []engine.Message
	// Appended counts the events that were new.
	Appended int
	// LastSequence is the stream's last sequence after the append.
	LastSequence uint64
}

// Store is an append-only event log, one sequence per stream and one global
// position across streams, and within a stream one version per key.
type Store interface {
	// Append adds events to stream with contiguous sequences. It is
	// idempotent by event ID within the stream: an ID already stored is not
	// appended again, and when every event is such a duplicate the expected
	// version is not checked (a retried append succeeds). Events with an
	// empty Time get the append time. Each event's Stream must be stream.
	//
	// A keyed event (Key != "") gets its key's next version: the number of
	// events ever appended to the key, itself included. An event whose
	// Version is set must carry exactly that version (counting the call's
	// earlier new events of the key), else Append returns a
	// *KeyConflictError and stores nothing of the call; Version 0 takes the
	// next one. An unkeyed event has Version 0. A duplicate by ID is
	// reported as stored, with its original key and version, whatever it
	// carries, and takes no version. Versions never go back and are never
	// reused, not after a compaction nor a restart.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events []engine.Message) (AppendResult, error)
	// Read returns up to limit events of stream with sequence > after, in
	// order. An unknown stream reads as empty.
	Read(ctx context.Context, stream string, after uint64, limit int) ([]engine.Message, error)
	// Version returns the stream's last sequence, 0 when it has none.
	Version(ctx context.Context, stream string) (uint64, error)
	// ReadKey returns up to limit events of key in stream with version >
	// after, in version order. A key without events (or "") reads as
	// empty. Its cost depends on the key's events, not on the stream's.
	ReadKey(ctx context.Context, stream, key string, after uint64, limit int) ([]engine.Message, error)
	// KeyVersion returns the key's version: how many events were ever
	// appended to it, compacted ones included; 0 when none (or for "").
	KeyVersion(ctx context.Context, stream, key string) (uint64, error)
	// Lookup returns the stream's stored event with that ID, false when
	// the stream holds none (never had one, or compacted it).
	Lookup(ctx context.Context, stream, id string) (engine.Message, bool, error)
	// Subscribe returns the events of stream after the given sequence: first
	// those already stored, then live appends, with no gap and no duplicate.
	Subscribe(ctx context.Context, stream string, after uint64) (Subscription, error)
	// Close releases the store; pending Subscription.Next calls return ErrClosed.
	Close() error
}

// Subscription reads one stream from a position onwards.
type Subscription interface {
	// Next returns the next event, waiting for an append when the
	// subscription has caught up, until ctx ends.
	Next(ctx context.Context) (engine.Message, error)
	// Close ends the subscription.
	Close() error
}
