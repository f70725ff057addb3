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

// ErrWrongExpectedVersion is wrapped by *ConflictError.
var ErrWrongExpectedVersion = errors.New("wrong expected version")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("event store closed")

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

// AppendResult reports what an Append stored.
type AppendResult struct {
	// Events are the appended events as stored, in input order, with
	// Sequence, Position and Time set. An event whose ID the stream already
	// held is reported as the stored one and was not appended again.
	Events []engine.Message
	// Appended counts the events that were new.
	Appended int
	// LastSequence is the stream's last sequence after the append.
	LastSequence uint64
}

// Store is an append-only event log, one sequence per stream and one global
// position across streams.
type Store interface {
	// Append adds events to stream with contiguous sequences. It is
	// idempotent by event ID within the stream: an ID already stored is not
	// appended again, and when every event is such a duplicate the expected
	// version is not checked (a retried append succeeds). Events with an
	// empty Time get the append time. Each event's Stream must be stream.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events []engine.Message) (AppendResult, error)
	// Read returns up to limit events of stream with sequence > after, in
	// order. An unknown stream reads as empty.
	Read(ctx context.Context, stream string, after uint64, limit int) ([]engine.Message, error)
	// Version returns the stream's last sequence, 0 when it has none.
	Version(ctx context.Context, stream string) (uint64, error)
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
