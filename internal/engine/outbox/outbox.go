// Package outbox holds accepted messages until the processor has stored and
// published them.
package outbox

import (
	"context"
	"errors"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// ErrFull is returned by Enqueue when the outbox is at its capacity. Nothing
// of that call was enqueued; the HTTP layer answers 503 with Retry-After.
var ErrFull = errors.New("outbox full")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("outbox closed")

// Entry is a message waiting in the outbox.
type Entry struct {
	// Position orders entries; it is unique within one outbox.
	Position uint64
	Message  engine.Message
}

// Outbox is a durable queue of accepted messages.
type Outbox interface {
	// Enqueue adds msgs, all or none. It returns ErrFull when they do not
	// fit under the capacity. The caller may reuse the msgs slice; the
	// messages' Headers and Payload are read-only from then on (as
	// engine.Message says of every message handed on), so an in-memory
	// outbox may keep them without copying.
	Enqueue(ctx context.Context, msgs []engine.Message) error
	// Pending returns up to limit entries not yet marked dispatched, oldest
	// first.
	Pending(ctx context.Context, limit int) ([]Entry, error)
	// MarkDispatched removes entries by position. Unknown positions are
	// ignored, so marking twice is harmless.
	MarkDispatched(ctx context.Context, positions []uint64) error
	// Len returns the number of entries not yet dispatched.
	Len() int
	// Signal receives a value after an Enqueue, so the processor can wake
	// without polling. Several enqueues may share one signal.
	Signal() <-chan struct{}
	// Close releases the outbox.
	Close() error
}
