package eventstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// subscriptionBatch is how many events a subscription reads from the store
// at once: enough to take the lock rarely, few enough to bound its memory.
const subscriptionBatch = 128

// memorySubscription pulls a stream's events from a Memory store. Next must
// not be called concurrently with itself; Close may be called from anywhere.
type memorySubscription struct {
	store  *Memory
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
// ErrClosed once the store is closed and ErrSubscriptionClosed once the
// subscription is.
func (s *memorySubscription) Next(ctx context.Context) (engine.Message, error) {
	for {
		if err := ctx.Err(); err != nil {
			return engine.Message{}, fmt.Errorf("next event of stream %q: %w", s.stream, err)
		}
		select {
		case <-s.store.done:
			return engine.Message{}, ErrClosed
		case <-s.done:
			return engine.Message{}, ErrSubscriptionClosed
		default:
		}
		if len(s.buf) > 0 {
			m := s.buf[0]
			s.buf[0] = engine.Message{} // let the payload go once returned
			s.buf = s.buf[1:]
			s.after = m.Sequence
			return m, nil
		}
		events, appended, err := s.store.poll(s.stream, s.after, subscriptionBatch)
		if err != nil {
			return engine.Message{}, err
		}
		if len(events) > 0 {
			s.buf = events
			continue
		}
		select {
		case <-appended:
		case <-ctx.Done():
		case <-s.store.done:
		case <-s.done:
		}
	}
}

// Close ends the subscription: a pending Next returns ErrSubscriptionClosed.
// Closing again is a no-op.
func (s *memorySubscription) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	return nil
}
