package httpapi

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/tracing"
)

// The CloudEvents distributed-tracing extension, as ingest keeps it: the
// ce-traceparent header in binary mode, the traceparent attribute in
// structured mode.
const (
	ceTraceparent = "ce-" + tracing.HeaderTraceparent
	ceTracestate  = "ce-" + tracing.HeaderTracestate
)

// ingestSpan is the server span of one ingest request. It starts once the
// request's events are read, as a CloudEvent in the body may name its
// parent, but from the request's arrival; a request refused before that
// gets its span when it ends. Without a tracer (tracing is off) there is no
// span, and the events keep the trace context the request carries.
type ingestSpan struct {
	tracer    trace.Tracer
	r         *http.Request
	ns        string
	stream    string
	key       string
	arrived   time.Time
	span      trace.Span
	recording bool
}

// unknownStreamSpanName names the span of an ingest into a stream that does
// not exist; eventsourcing.stream still says which one was asked for.
const unknownStreamSpanName = "ingest"

// serverKind is an option of every ingest span, made once.
var serverKind = trace.WithSpanKind(trace.SpanKindServer)

func (h *Handler) newIngestSpan(r *http.Request, ns, stream, key string) ingestSpan {
	s := ingestSpan{tracer: h.tracer, r: r, ns: ns, stream: stream, key: key}
	if s.tracer != nil {
		s.arrived = time.Now()
	}
	return s
}

// start starts the span, the child of the trace context the request
// carries (or the root of a new trace), and gives every event that span's
// context as its traceparent and tracestate headers. It returns the
// request's context with the span, for storing the events.
func (s *ingestSpan) start(events []core.Event) context.Context {
	ctx := ingestParent(s.r, events)
	if s.tracer != nil {
		ctx = s.startSpan(ctx, len(events))
	}
	if tc, ok := tracing.ContextOf(ctx); ok {
		stampTraceContext(events, tc)
	}
	return ctx
}

func (s *ingestSpan) startSpan(parent context.Context, events int) context.Context {
	ctx, span := s.tracer.Start(parent, "ingest "+s.ns+"/"+s.stream, serverKind, trace.WithTimestamp(s.arrived))
	s.span, s.recording = span, span.IsRecording()
	if s.recording {
		span.SetAttributes(
			semconv.HTTPRequestMethodKey.String(s.r.Method),
			semconv.HTTPRoute(s.r.Pattern),
			tracing.AttrNamespace.String(s.ns),
			tracing.AttrStream.String(engineName(s.ns, s.stream)),
			tracing.AttrEventCount.Int(events),
		)
		if s.key != "" {
			span.SetAttributes(tracing.AttrEventKey.String(s.key))
		}
	}
	return ctx
}

// end ends the span with the request's outcome: p, or 202 when nil.
func (s *ingestSpan) end(p *Problem) {
	if s.tracer == nil {
		return
	}
	if s.span == nil {
		s.startSpan(ingestParent(s.r, nil), 0)
	}
	if s.recording {
		status := http.StatusAccepted
		if p != nil {
			status = p.Status
		}
		s.span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if status == http.StatusNotFound {
			// The stream does not exist: its name is the client's to
			// choose, and span names must stay few (tracing backends
			// group and count spans by name).
			s.span.SetName(unknownStreamSpanName)
		}
		if status >= 500 {
			s.span.SetStatus(codes.Error, p.Detail)
		}
	}
	s.span.End()
}

// ingestParent is the trace context an ingest continues: the request's
// traceparent header (W3C Trace Context), else the distributed-tracing
// extension of its first CloudEvent that has one. A malformed value is
// ignored: the ingest starts a new trace.
func ingestParent(r *http.Request, events []core.Event) context.Context {
	ctx := r.Context()
	if r.Header.Get("Traceparent") != "" {
		if remote := tracing.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header)); trace.SpanContextFromContext(remote).IsValid() {
			return remote
		}
	}
	for i := range events {
		if tp := events[i].Headers[ceTraceparent]; tp != "" {
			return tracing.Propagator.Extract(ctx, propagation.MapCarrier{
				tracing.HeaderTraceparent: tp,
				tracing.HeaderTracestate:  events[i].Headers[ceTracestate],
			})
		}
	}
	return ctx
}

// stampTraceContext sets tc on every event. Events of a batch may share one
// header map (NDJSON's), and ingest copies each event's headers, so the
// events without headers share one map too.
func stampTraceContext(events []core.Event, tc tracing.Context) {
	var bare map[string]string
	for i := range events {
		ev := &events[i]
		if ev.Headers != nil {
			tc.Set(ev.Headers)
			continue
		}
		if bare == nil {
			bare = tc.Set(nil)
		}
		ev.Headers = bare
	}
}
