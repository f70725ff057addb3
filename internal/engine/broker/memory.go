package broker

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// Memory is an in-process Broker. Publish copies each message straight into
// the subscribers' buffered channels on the caller's goroutine: it starts no
// goroutine, per message or per publish.
//
// Publishes on one stream are serialised by that stream's lock, so every
// subscriber sees the same order; publishes on different streams never wait
// for each other. The zero value is not usable: call NewMemory.
type Memory struct {
	// mu guards topics and the open-to-closed transition. Publish only
	// read-locks it, briefly, to find a stream's topic.
	mu     sync.RWMutex
	topics map[string]*topic
	closed atomic.Bool
}

// topic holds one stream's subscribers.
type topic struct {
	// pub serialises publishes on the stream so that subscribers agree on order.
	pub sync.Mutex
	// subs is replaced, never changed in place, under Memory.mu, so Publish
	// can read it while holding only pub.
	subs atomic.Pointer[[]*memorySubscription]
}

var _ Broker = (*Memory)(nil)

// NewMemory returns an open in-memory broker.
func NewMemory() *Memory {
	return &Memory{topics: make(map[string]*topic)}
}

// Publish delivers msgs, in order, to every current subscriber of each
// message's Stream. It never waits: a subscriber whose queue is full is
// dropped (its Err becomes ErrLagged) and left to catch up from the store.
// After Close it returns ErrClosed.
func (b *Memory) Publish(_ context.Context, msgs ...engine.Message) error {
	for len(msgs) > 0 {
		if b.closed.Load() {
			return ErrClosed
		}
		// A run of messages on one stream is delivered under one lock.
		n := 1
		for n < len(msgs) && msgs[n].Stream == msgs[0].Stream {
			n++
		}
		b.publishRun(msgs[:n])
		msgs = msgs[n:]
	}
	return nil
}

// publishRun delivers msgs, which all share one stream, to that stream's
// subscribers, and removes those that fell behind.
func (b *Memory) publishRun(msgs []engine.Message) {
	b.mu.RLock()
	t := b.topics[msgs[0].Stream]
	b.mu.RUnlock()
	if t == nil {
		return
	}
	t.pub.Lock()
	defer t.pub.Unlock()
	// Loaded under pub so a subscription made before this publish took the
	// lock gets every message of it.
	subs := *t.subs.Load()
	var lagged []*memorySubscription
	for i := range msgs {
		for _, s := range subs {
			if s.send(&msgs[i]) {
				lagged = append(lagged, s)
			}
		}
	}
	for _, s := range lagged {
		b.unsubscribe(s)
	}
}

// Subscribe starts a subscription to stream whose queue holds at most
// capacity messages (capacity < 1 means 1). After Close it returns ErrClosed.
func (b *Memory) Subscribe(stream string, capacity int) (Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, ErrClosed
	}
	t := b.topics[stream]
	if t == nil {
		t = &topic{}
		t.subs.Store(new([]*memorySubscription))
		b.topics[stream] = t
	}
	s := newMemorySubscription(b, t, stream, max(capacity, 1))
	old := *t.subs.Load()
	// The full slice expression makes append copy: publishers may be reading old.
	subs := append(old[:len(old):len(old)], s)
	t.subs.Store(&subs)
	return s, nil
}

// Subscribers returns how many open subscriptions stream has.
func (b *Memory) Subscribers(stream string) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.topics[stream]
	if t == nil {
		return 0
	}
	return len(*t.subs.Load())
}

// Close closes every subscription (their Err is ErrClosed). Later Publish and
// Subscribe calls return ErrClosed. Closing twice is harmless.
func (b *Memory) Close() error {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil
	}
	b.closed.Store(true)
	topics := b.topics
	b.topics = make(map[string]*topic)
	b.mu.Unlock()

	for _, t := range topics {
		for _, s := range *t.subs.Load() {
			s.end(ErrClosed)
		}
	}
	return nil
}

// unsubscribe removes s from its topic, and the topic from the broker once it
// has no subscribers left. Removing an already removed s does nothing.
func (b *Memory) unsubscribe(s *memorySubscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *s.topic.subs.Load()
	i := slices.Index(old, s)
	if i < 0 {
		return
	}
	subs := slices.Delete(slices.Clone(old), i, i+1)
	s.topic.subs.Store(&subs)
	if len(subs) == 0 && b.topics[s.stream] == s.topic {
		delete(b.topics, s.stream)
	}
}
