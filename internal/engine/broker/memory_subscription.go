package broker

import (
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
	// mu is held by send and by end around close(ch): a send on a closed
	// channel would panic, so the two must never overlap. Neither waits
	// while holding it.
	mu     sync.Mutex
	closed bool  // guarded by mu
	err    error // why ch was closed; guarded by mu
}

func newMemorySubscription(b *Memory, t *topic, stream string, capacity int) *memorySubscription {
	return &memorySubscription{
		b:      b,
		topic:  t,
		stream: stream,
		ch:     make(chan engine.Message, capacity),
	}
}

// C delivers the messages. It is closed when the subscription ends; messages
// queued before that can still be received.
func (s *memorySubscription) C() <-chan engine.Message { return s.ch }

// Err says why C was closed: ErrLagged, ErrClosed, or nil after Close or
// while open.
func (s *memorySubscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Len is the number of messages queued and not yet received.
func (s *memorySubscription) Len() int { return len(s.ch) }

// Close ends the subscription. Closing twice is harmless.
func (s *memorySubscription) Close() error {
	s.end(nil)
	s.b.unsubscribe(s)
	return nil
}

// end closes the queue for reason, unless it is closed already.
func (s *memorySubscription) end(reason error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(reason)
}

func (s *memorySubscription) endLocked(reason error) {
	if s.closed {
		return
	}
	s.closed = true
	s.err = reason
	close(s.ch)
}

// send queues *m when the queue has room, and otherwise ends the
// subscription with ErrLagged: the messages already queued stay receivable,
// and the subscriber reads the rest from the store. It reports whether it
// ended the subscription.
func (s *memorySubscription) send(m *engine.Message) (lagged bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	select {
	case s.ch <- *m:
		return false
	default:
		s.endLocked(ErrLagged)
		return true
	}
}
