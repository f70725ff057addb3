package engine

import "context"

// Handler handles one message. The messages it returns are new events caused by
// msg; the router puts them in the outbox with causation and correlation ids
// carried over. A handler must be safe to call from one goroutine at a time per
// route; the router never calls one route's handler concurrently.
type Handler interface {
	Handle(ctx context.Context, msg Message) ([]Message, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msg Message) ([]Message, error)

// Handle calls f(ctx, msg).
func (f HandlerFunc) Handle(ctx context.Context, msg Message) ([]Message, error) {
	return f(ctx, msg)
}

// Middleware wraps a Handler with behaviour such as retries or logging.
type Middleware func(Handler) Handler

// Chain applies middleware so that the first is the outermost: Chain(h, a, b)
// runs a, then b, then h.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}
