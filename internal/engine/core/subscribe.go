package core

import (
	"context"
	"fmt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// Subscription reads a stream's stored events from a sequence onwards, with
// Value decoded as ReadStream decodes it. The store's subscriptions pull
// events when Next is called, so a subscriber that reads slowly holds no
// append back: it only falls behind.
type Subscription struct {
	e   *Engine
	sub eventstore.Subscription
}

// Next returns the next stored event, waiting for an append once the
// subscription has caught up, until ctx ends.
func (s *Subscription) Next(ctx context.Context) (engine.Message, error) {
	m, err := s.sub.Next(ctx)
	if err != nil {
		return engine.Message{}, err
	}
	s.e.decode(&m)
	return m, nil
}

// Close ends the subscription.
func (s *Subscription) Close() error { return s.sub.Close() }

// Subscribe returns the stored events of a stream (or of a dead-letter
// stream, as ReadStream reads it) with a sequence above after: those stored
// already, then each new one, without gap or duplicate.
func (e *Engine) Subscribe(ctx context.Context, name string, after uint64) (*Subscription, error) {
	if !e.readable(name) {
		return nil, fmt.Errorf("%w: %q", ErrStreamNotFound, name)
	}
	sub, err := e.cfg.Store.Subscribe(ctx, name, after)
	if err != nil {
		return nil, err
	}
	return &Subscription{e: e, sub: sub}, nil
}

// LastSequence returns the sequence of a stream's newest stored event, 0
// when it has none.
func (e *Engine) LastSequence(ctx context.Context, name string) (uint64, error) {
	if !e.readable(name) {
		return 0, fmt.Errorf("%w: %q", ErrStreamNotFound, name)
	}
	return e.cfg.Store.Version(ctx, name)
}
