package boltstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// subscriptionPage is how many events a subscription reads per read-only
// transaction: few transactions while catching up, bounded memory.
const subscriptionPage = 256

// subscription pulls a stream's events from the file by sequence, so the
// order is the file's; a notification only says when to look again. Next
// must not be called concurrently with itself; Close may be called from
// anywhere.
type subscription struct {
	store  *EventStore
	stream string
	// after is the sequence of the last event Next returned.
	after uint64
	// buf holds events read but not yet returned, in order.
	buf []engine.Message

	closeOnce sync.Once
	done      chan struct{}
}

// Next returns the stream's next event, waiting for an append when the
// subscription has caught up. It returns ctx's error once ctx ends,
// eventstore.ErrClosed once the store is closed and
// eventstore.ErrSubscriptionClosed once the subscription is.
func (sub *subscription) Next(ctx context.Context) (engine.Message, error) {
	for {
		if err := ctx.Err(); err != nil {
			return engine.Message{}, fmt.Errorf("next event of stream %q: %w", sub.stream, err)
		}
		select {
		case <-sub.store.done:
			return engine.Message{}, eventstore.ErrClosed
		case <-sub.done:
			return engine.Message{}, eventstore.ErrSubscriptionClosed
		default:
		}
		if len(sub.buf) > 0 {
			m := sub.buf[0]
			sub.buf[0] = engine.Message{} // let the payload go once returned
			sub.buf = sub.buf[1:]
			sub.after = m.Sequence
			return m, nil
		}
		events, appended, err := sub.store.poll(sub.stream, sub.after)
		if err != nil {
			return engine.Message{}, storeError("next event of stream", sub.stream, err)
		}
		if len(events) > 0 {
			sub.buf = events
			continue
		}
		select {
		case <-appended:
		case <-ctx.Done():
		case <-sub.store.done:
		case <-sub.done:
		}
	}
}

// Close ends the subscription: a pending Next returns
// eventstore.ErrSubscriptionClosed. Closing again is a no-op.
func (sub *subscription) Close() error {
	sub.closeOnce.Do(func() { close(sub.done) })
	return nil
}

// poll returns the next page of stream after the given sequence or, when
// there is none yet, a channel closed after the stream's next append.
func (s *EventStore) poll(stream string, after uint64) ([]engine.Message, <-chan struct{}, error) {
	events, err := s.read(stream, after, subscriptionPage)
	if err != nil || len(events) > 0 {
		return events, nil, err
	}
	ch := s.appended(stream)
	// An append that committed after the read above began may have notified
	// before the channel was registered: read again. A commit after this
	// read notifies after the registration, so it closes the channel.
	events, err = s.read(stream, after, subscriptionPage)
	if err != nil || len(events) > 0 {
		return events, nil, err
	}
	return nil, ch, nil
}
