package middleware

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/tracing"
)

// Values of the eventsourcing.outcome attribute of a handling span.
const (
	outcomeHandled      = "handled"
	outcomeSkipped      = "skipped"
	outcomeDeadLettered = "dead_lettered"
	outcomeFailed       = "failed"
)

// Trace handles each event in a consumer span named spanName, the child of
// the trace context the event carries (its traceparent header), so that
// every handling of an ingested event joins the ingest's trace. An event
// that carries none is handled without a span: there is no trace to join,
// and a rebuild replaying old events would otherwise start one trace each.
//
// It belongs outermost, so that the span covers retries and dead-lettering.
// attrs are set on every span; the event's own (stream, id, name, key,
// sequence) only on a span that records.
func Trace(tracer trace.Tracer, spanName string, attrs ...attribute.KeyValue) engine.Middleware {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	return func(next engine.Handler) engine.Handler {
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			if msg.Headers[tracing.HeaderTraceparent] == "" {
				return next.Handle(ctx, msg)
			}
			ctx, span := tracer.Start(tracing.FromHeaders(ctx, msg.Headers), spanName, opts...)
			defer span.End()
			if !span.IsRecording() {
				return next.Handle(ctx, msg)
			}
			span.SetAttributes(tracing.EventAttributes(msg)...)
			out, err := next.Handle(ctx, msg)
			endHandling(span, err)
			return out, err
		})
	}
}

// endHandling records the outcome of a handling on its span.
func endHandling(span trace.Span, err error) {
	switch {
	case err == nil:
		span.SetAttributes(tracing.AttrOutcome.String(outcomeHandled))
	case errors.Is(err, engine.ErrSkip):
		span.SetAttributes(tracing.AttrOutcome.String(outcomeSkipped))
	case errors.Is(err, engine.ErrDeadLettered):
		span.SetAttributes(tracing.AttrOutcome.String(outcomeDeadLettered))
		span.SetStatus(codes.Error, err.Error())
	default:
		span.SetAttributes(tracing.AttrOutcome.String(outcomeFailed))
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}
