package natsstore

import (
	"context"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

// Outbox is the outbox role on NATS: what handlers return (replies, dead
// letters) is appended to its stream at once, acknowledged by JetStream,
// so nothing waits in this process and any replica may enqueue. Nothing is
// ever pending, and the processor finds nothing to do; the engine feeds
// its broker from the store instead (core.Appender).
type Outbox struct {
	store *EventStore
}

var _ outbox.Outbox = (*Outbox)(nil)

// NewOutbox returns the outbox that appends into store.
func NewOutbox(store *EventStore) *Outbox { return &Outbox{store: store} }

// Enqueue appends msgs, each to its stream, in order. Messages of one
// stream are stored all or none; a call spanning streams (a handler's
// outputs to several) may store the first streams' and fail on a later
// one, and a retry stores nothing twice: the IDs are the same.
func (o *Outbox) Enqueue(ctx context.Context, msgs []engine.Message) error {
	for len(msgs) > 0 {
		n := 1
		for n < len(msgs) && msgs[n].Stream == msgs[0].Stream {
			n++
		}
		if _, err := o.store.Append(ctx, msgs[0].Stream, eventstore.Any, msgs[:n]); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

// Pending implements outbox.Outbox: nothing is ever pending.
func (o *Outbox) Pending(context.Context, int) ([]outbox.Entry, error) { return nil, nil }

// Scan implements outbox.Outbox: nothing is ever pending.
func (o *Outbox) Scan(context.Context, func(outbox.Entry) error) error { return nil }

// MarkDispatched implements outbox.Outbox: there is nothing to mark.
func (o *Outbox) MarkDispatched(context.Context, []uint64) error { return nil }

// Len implements outbox.Outbox.
func (o *Outbox) Len() int { return 0 }

// Signal implements outbox.Outbox: it never fires.
func (o *Outbox) Signal() <-chan struct{} { return nil }

// Close implements outbox.Outbox; the store is closed by its owner.
func (o *Outbox) Close() error { return nil }
