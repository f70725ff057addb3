// Package tracing carries W3C Trace Context (traceparent, tracestate) with
// events, so that an ingest, every handling of its events and every sink
// delivery are spans of one trace. An event keeps the context of the span
// that accepted it in its headers; whatever handles the event later starts
// its span as a child of that context (FromHeaders), possibly in another
// process after a restart.
//
// Spans go to the OpenTelemetry TracerProvider the engine is given, by
// default the global one. With the no-op provider (the manager's when no
// exporter is configured) no span is started, and tracing costs a header
// lookup per event.
package tracing

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// The event headers that hold an event's trace context, named as the W3C
// Trace Context HTTP headers are.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// ScopeName is the instrumentation scope of the engine's spans.
const ScopeName = "github.com/eventsourcing-dev/eventsourcing-operator"

// Attribute keys of the engine's spans, beside OpenTelemetry's semantic
// conventions (docs/monitoring.md lists them).
const (
	AttrNamespace     = attribute.Key("eventsourcing.namespace")
	AttrStream        = attribute.Key("eventsourcing.stream")
	AttrEventCount    = attribute.Key("eventsourcing.event.count")
	AttrEventID       = attribute.Key("eventsourcing.event.id")
	AttrEventName     = attribute.Key("eventsourcing.event.name")
	AttrEventKey      = attribute.Key("eventsourcing.event.key")
	AttrEventSequence = attribute.Key("eventsourcing.event.sequence")
	AttrHandler       = attribute.Key("eventsourcing.handler")
	AttrOutcome       = attribute.Key("eventsourcing.outcome")
)

// Propagator reads and writes trace context: W3C Trace Context only, as the
// API promises, whatever global propagator a program installs.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Tracer is the engine's tracer from tp (nil: the global provider), or nil
// when tp is the no-op provider, which a program installs to say that
// tracing is off: callers then start no spans at all, and only pass on the
// trace context that events carry.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if _, off := tp.(noop.TracerProvider); off {
		return nil
	}
	return tp.Tracer(ScopeName)
}

// FromHeaders returns ctx with the remote span context that an event's
// headers name, as the parent of a span about the event. It returns ctx
// itself when they name none or a malformed one.
func FromHeaders(ctx context.Context, headers map[string]string) context.Context {
	if headers[HeaderTraceparent] == "" {
		return ctx
	}
	return Propagator.Extract(ctx, propagation.MapCarrier(headers))
}

// Context holds the header values of one span context, to be set on events.
type Context struct {
	traceparent, tracestate string
}

// ContextOf returns the header values of ctx's span context; ok is false
// when ctx has no valid one (tracing is off and nothing came in).
func ContextOf(ctx context.Context) (c Context, ok bool) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return Context{}, false
	}
	carrier := make(propagation.MapCarrier, 2)
	Propagator.Inject(ctx, carrier)
	return Context{traceparent: carrier[HeaderTraceparent], tracestate: carrier[HeaderTracestate]}, true
}

// Set writes c into headers, which may be nil, and returns them. A
// tracestate that headers hold and c does not is removed: it belonged to
// another span context.
func (c Context) Set(headers map[string]string) map[string]string {
	if headers == nil {
		headers = make(map[string]string, 2)
	}
	headers[HeaderTraceparent] = c.traceparent
	if c.tracestate != "" {
		headers[HeaderTracestate] = c.tracestate
	} else {
		delete(headers, HeaderTracestate)
	}
	return headers
}

// Traceparent is c's traceparent header value.
func (c Context) Traceparent() string { return c.traceparent }

// EventAttributes describe msg on a span.
func EventAttributes(msg engine.Message) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 4, 5)
	attrs[0] = AttrStream.String(msg.Stream)
	attrs[1] = AttrEventID.String(msg.ID)
	attrs[2] = AttrEventName.String(msg.Name)
	attrs[3] = AttrEventSequence.Int64(int64(msg.Sequence)) //nolint:gosec // sequences stay far below 2^63
	if msg.Key != "" {
		attrs = append(attrs, AttrEventKey.String(msg.Key))
	}
	return attrs
}
