package router

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// ErrNoRoute is returned by Redeliver for a route that is not running.
var ErrNoRoute = errors.New("no such route")

// Redeliver hands msg to the named route's current handler once, outside its
// streams' order, as a redrive does (ctx says so to the middleware). It runs
// under the route's lock, so never beside the route's own handling, and
// settle runs under it too with the handler's outcome: nil, or an error
// wrapping engine.ErrSkip or engine.ErrDeadLettered. The route's Settle is
// not called and its positions do not move. Messages the handler returns go
// to the outbox before settle is called. Any other error of the handler is
// returned, and settle is not called.
func (r *Router) Redeliver(ctx context.Context, name string, msg engine.Message,
	settle func(ctx context.Context, outcome error) error) error {
	r.mu.Lock()
	rt, ok := r.routes[name]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoRoute, name)
	}
	rt.handleMu.Lock()
	defer rt.handleMu.Unlock()
	if rt.stopped {
		return fmt.Errorf("%w: %q was removed", ErrNoRoute, name)
	}
	route := rt.current.Load()
	out, err := route.Handler.Handle(ctx, msg)
	switch {
	case err == nil:
		if len(out) > 0 {
			if err := r.cfg.Outbox.Enqueue(ctx, causedBy(route.Name, msg, out)); err != nil {
				return fmt.Errorf("enqueue what %q returned for event %q: %w", name, msg.ID, err)
			}
		}
	case errors.Is(err, engine.ErrSkip), errors.Is(err, engine.ErrDeadLettered):
	default:
		return err
	}
	return settle(ctx, err)
}
