package broker

import (
	"context"
	"sync"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// memorySubscription is one subscriber's queue in a Memory broker: a buffered
// channel that publishers send on and the subscriber receives from.
type memorySubscription struct {
	b      *Memory
	topic  *topic
	stream string
	ch     chan engine.Message
	// done is closed first by shutdown so that a send waiting on a full ch
	// lets go of mu.
	done chan struct{}
	once sync.Once
	// mu is held by send and by shutdown around close(ch): a send on a
	// closed channel would panic, so the two must never overlap.
	mu     sync.Mutex
	closed bool // guarded by mu
}

func newMemorySubscription(b *Memory, t *topic, stream string, capacity int) *memorySubscription {
	return &memorySubscription{
		b:      b,
		topic:  t,
		stream: stream,
		ch:     make(chan engine.Message, capacity),
		done:   make(chan struct{}),
	}
}

// C delivers the messages. It is closed by Close and by the broker's Close;
// messages queued before that can still be received.
func (s *memorySubscription) C() <-chan engine.Message { return s.ch }

// Len is the number of messages queued and not yet received.
func (s *memorySubscription) Len() int { return len(s.ch) }

// Close ends the subscription: a Publish waiting on its full queue moves on to
// the next subscriber. Closing twice is harmless.
func (s *memorySubscription) Close() error {
	s.shutdown()
	s.b.unsubscribe(s)
	return nil
}

// shutdown closes the queue once, after any send in progress has returned.
func (s *memorySubscription) shutdown() {
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		s.closed = true
		close(s.ch)
		s.mu.Unlock()
	})
}

// send queues *m. It tries a non-blocking send first and waits only when the
// queue is full, until there is room, ctx ends, or the subscription or broker
// closes.
func (s *memorySubscription) send(ctx context.Context, m *engine.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.b.closedErr()
	}
	select {
	case s.ch <- *m:
		return nil
	default:
	}
	select {
	case s.ch <- *m:
		return nil
	case <-s.done:
		return s.b.closedErr()
	case <-s.b.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}
