package router

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// CheckOutputs is the innermost middleware of a route whose handler may
// return messages: an output without a stream, or without a payload or value,
// is a bug in the handler that no retry fixes, so it fails permanently (and
// the event is dead-lettered) instead of stalling the route.
func CheckOutputs() engine.Middleware {
	return func(next engine.Handler) engine.Handler {
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			out, err := next.Handle(ctx, msg)
			if err != nil {
				return out, err
			}
			for i, m := range out {
				if m.Stream == "" {
					return nil, engine.Permanentf("output %d of event %s names no stream", i, msg.ID)
				}
				if m.Payload == nil && m.Value == nil {
					return nil, engine.Permanentf("output %d of event %s has neither payload nor value", i, msg.ID)
				}
			}
			return out, nil
		})
	}
}

// outputNamespace seeds the ids of handler outputs that came without one.
var outputNamespace = uuid.MustParse("5b0c7a4e-3f0e-4c53-9a43-7d0f2f3e6a11")

// causedBy prepares a handler's outputs for the outbox: causation and
// correlation ids from the cause, and, for outputs without an id, one derived
// from the route, the cause and the output's index, so that handling the
// same event again (after a crash) appends nothing twice.
func causedBy(route string, cause engine.Message, out []engine.Message) []engine.Message {
	msgs := make([]engine.Message, len(out))
	for i, m := range out {
		m = m.CausedBy(cause)
		if m.ID == "" {
			key := fmt.Sprintf("%s\x00%s\x00%s\x00%d", route, cause.Stream, cause.ID, i)
			m.ID = uuid.NewSHA1(outputNamespace, []byte(key)).String()
		}
		msgs[i] = m
	}
	return msgs
}
