package middleware

import (
	"context"
	"fmt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// Decoders decodes a payload by the stream it belongs to and its content type.
// It is what Deserialize needs of the serde registry; implementations must be
// safe for concurrent use.
type Decoders interface {
	// Decode returns payload as a JSON-compatible value.
	Decode(stream, contentType string, payload []byte) (any, error)
}

// Deserialize sets msg.Value from msg.Payload with d before calling the next
// handler. A message whose Value is already set is passed on as it is. A
// payload that does not decode can never succeed, so the error is marked
// engine.Permanent and the message is dead-lettered without retries.
//
// Deserialize panics if d is nil: that is a wiring mistake, not a runtime
// condition.
func Deserialize(d Decoders) engine.Middleware {
	if d == nil {
		panic("middleware: Deserialize needs non-nil Decoders")
	}
	return func(next engine.Handler) engine.Handler {
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			if msg.Value == nil {
				v, err := d.Decode(msg.Stream, msg.ContentType, msg.Payload)
				if err != nil {
					return nil, engine.Permanent(fmt.Errorf("deserialize event %q of stream %q: %w", msg.ID, msg.Stream, err))
				}
				msg.Value = v
			}
			return next.Handle(ctx, msg)
		})
	}
}

// Validators checks payloads by the stream they belong to and their content
// type without building their values where it can.
type Validators interface {
	Validate(stream, contentType string, payload []byte) error
}

// DecodeValidators both decodes and validates.
type DecodeValidators interface {
	Decoders
	Validators
}

// DeserializeIfNeeded is Deserialize for a chain in which not every message's
// value is read. For a message needValue rejects, the payload is only
// validated, which for JSON costs a fraction of decoding it, and Value stays
// nil; any other message is decoded as Deserialize does. Either way a payload
// that is not valid is a permanent error.
func DeserializeIfNeeded(d DecodeValidators, needValue func(engine.Message) bool) engine.Middleware {
	if d == nil || needValue == nil {
		panic("middleware: DeserializeIfNeeded needs non-nil decoders and needValue")
	}
	decode := Deserialize(d)
	return func(next engine.Handler) engine.Handler {
		decodeThenNext := decode(next)
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			if msg.Value != nil || needValue(msg) {
				return decodeThenNext.Handle(ctx, msg)
			}
			if err := d.Validate(msg.Stream, msg.ContentType, msg.Payload); err != nil {
				return nil, engine.Permanent(fmt.Errorf("deserialize event %q of stream %q: %w", msg.ID, msg.Stream, err))
			}
			return next.Handle(ctx, msg)
		})
	}
}
