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

// ScanPage is how many entries Scan reads under the outbox's lock at a time:
// a scan of a million pending entries never copies them all at once.
const ScanPage = 1024

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
	// Scan calls fn with every entry not yet dispatched, oldest first, and
	// stops at fn's first error, which it returns. It reads the entries a
	// page at a time and holds no lock while fn runs, so fn may call the
	// outbox; entries enqueued or dispatched during the scan may or may not
	// be visited. The engine scans at start, before it takes requests, to
	// learn what was accepted but is not stored yet.
	Scan(ctx context.Context, fn func(Entry) error) error
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
