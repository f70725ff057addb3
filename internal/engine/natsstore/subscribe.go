package natsstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// Subscribe implements eventstore.Store with an ordered consumer: the
// server pushes the stream from the sequence after, stored events first,
// then new ones, and the client restarts it at the right place after a
// gap or a reconnect, so nothing is missed or seen twice.
func (s *EventStore) Subscribe(ctx context.Context, stream string, after uint64) (eventstore.Subscription, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	st := s.stream(stream)
	if err := s.create(ctx, st); err != nil {
		return nil, err
	}
	cons, err := s.c.JS.OrderedConsumer(ctx, st.js, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   after + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("natsstore: subscribe to %q: %w", stream, err)
	}
	// Short pulls with frequent heartbeats: a pull that stops being served
	// (seen under load, the consumer idle with events pending) is noticed
	// and replaced within seconds rather than after the default 30s.
	it, err := cons.Messages(jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return nil, fmt.Errorf("natsstore: subscribe to %q: %w", stream, err)
	}
	sub := &subscription{s: s, st: st, it: it}
	s.subs.Store(sub, struct{}{})
	if s.closed.Load() { // Close ran meanwhile and may have missed it
		sub.stop()
	}
	return sub, nil
}

type subscription struct {
	s    *EventStore
	st   *esStream
	it   jetstream.MessagesContext
	once sync.Once
	// closed is set by Close, not by the store's Close.
	closed atomic.Bool
}

func (sub *subscription) stop() {
	sub.once.Do(func() {
		sub.it.Stop()
		sub.s.subs.Delete(sub)
	})
}

// Next implements eventstore.Subscription.
func (sub *subscription) Next(ctx context.Context) (engine.Message, error) {
	m, err := sub.it.Next(jetstream.NextContext(ctx))
	if err != nil {
		if sub.closed.Load() {
			return engine.Message{}, eventstore.ErrSubscriptionClosed
		}
		if sub.s.closed.Load() {
			return engine.Message{}, eventstore.ErrClosed
		}
		if ctx.Err() != nil {
			return engine.Message{}, ctx.Err()
		}
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return engine.Message{}, eventstore.ErrClosed
		}
		return engine.Message{}, fmt.Errorf("natsstore: subscription to %q: %w", sub.st.name, err)
	}
	meta, err := m.Metadata()
	if err != nil {
		return engine.Message{}, fmt.Errorf("natsstore: subscription to %q: %w", sub.st.name, err)
	}
	return sub.st.decode(stored{Subject: m.Subject(), Sequence: meta.Sequence.Stream, Data: m.Data()})
}

// Close implements eventstore.Subscription.
func (sub *subscription) Close() error {
	sub.closed.Store(true)
	sub.stop()
	return nil
}
