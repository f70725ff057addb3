package middleware

import (
	"context"
	"fmt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// Predicate decides whether a message should reach the handler. It is what
// Filter needs of a compiled CEL expression; implementations must be safe for
// concurrent use.
type Predicate interface {
	// Match reports whether msg passes.
	Match(ctx context.Context, msg engine.Message) (bool, error)
}

// PredicateFunc adapts a function to Predicate.
type PredicateFunc func(ctx context.Context, msg engine.Message) (bool, error)

// Match calls f(ctx, msg).
func (f PredicateFunc) Match(ctx context.Context, msg engine.Message) (bool, error) {
	return f(ctx, msg)
}

// Filter passes a message on only when p matches it. A message that does not
// match is skipped (engine.ErrSkip), which is not a failure. An error
// evaluating p is marked engine.Permanent: the same event would fail the same
// way again, so it is dead-lettered rather than retried.
//
// Filter panics if p is nil: that is a wiring mistake.
func Filter(p Predicate) engine.Middleware {
	if p == nil {
		panic("middleware: Filter needs a non-nil Predicate")
	}
	return func(next engine.Handler) engine.Handler {
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			ok, err := p.Match(ctx, msg)
			if err != nil {
				return nil, engine.Permanent(fmt.Errorf("filter event %q of stream %q: %w", msg.ID, msg.Stream, err))
			}
			if !ok {
				return nil, engine.ErrSkip
			}
			return next.Handle(ctx, msg)
		})
	}
}
