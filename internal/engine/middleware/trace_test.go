package middleware

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/tracing"
)

const (
	ingestTrace = "0af7651916cd43dd8448eb211c80319c"
	ingestSpan  = "b7ad6b7169203331"
)

func tracedMessage() engine.Message {
	msg := testMessage()
	msg.Key = "order-1"
	msg.Headers = map[string]string{tracing.HeaderTraceparent: "00-" + ingestTrace + "-" + ingestSpan + "-01"}
	return msg
}

func traceHandler(t *testing.T, next engine.Handler) (engine.Handler, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return Trace(tp.Tracer("test"), "projection shop/orders", tracing.AttrHandler.String("shop/orders"))(next), exp
}

func TestTraceHandlesInAChildSpanOfTheEventsTraceContext(t *testing.T) {
	var inner trace.SpanContext
	h, exp := traceHandler(t, engine.HandlerFunc(func(ctx context.Context, _ engine.Message) ([]engine.Message, error) {
		inner = trace.SpanContextFromContext(ctx)
		return nil, nil
	}))
	if _, err := h.Handle(context.Background(), tracedMessage()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name != "projection shop/orders" || s.SpanKind != trace.SpanKindConsumer {
		t.Errorf("span %q of kind %v, want projection shop/orders, consumer", s.Name, s.SpanKind)
	}
	if s.Parent.TraceID().String() != ingestTrace || s.Parent.SpanID().String() != ingestSpan {
		t.Errorf("parent %s/%s, want the event's %s/%s", s.Parent.TraceID(), s.Parent.SpanID(), ingestTrace, ingestSpan)
	}
	if inner.SpanID() != s.SpanContext.SpanID() {
		t.Errorf("the handler ran in span %s, want the handling's %s", inner.SpanID(), s.SpanContext.SpanID())
	}
	got := attribute.NewSet(s.Attributes...)
	for _, want := range []attribute.KeyValue{
		tracing.AttrHandler.String("shop/orders"), tracing.AttrStream.String("items"), tracing.AttrEventID.String("evt-1"),
		tracing.AttrEventName.String("ItemCreated"), tracing.AttrEventKey.String("order-1"),
		tracing.AttrEventSequence.Int64(7), tracing.AttrOutcome.String("handled"),
	} {
		if v, ok := got.Value(want.Key); !ok || v != want.Value {
			t.Errorf("attribute %s = %v, want %v", want.Key, v.String(), want.Value.String())
		}
	}
}

func TestTraceStartsNoSpanForAnEventWithoutTraceContext(t *testing.T) {
	next := newScriptedHandler()
	h, exp := traceHandler(t, next)
	if _, err := h.Handle(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if next.calls() != 1 || len(exp.GetSpans()) != 0 {
		t.Fatalf("%d calls and %d spans, want the handler called and no span", next.calls(), len(exp.GetSpans()))
	}
}

func TestTraceRecordsTheOutcome(t *testing.T) {
	for _, c := range []struct {
		err     error
		outcome string
		status  codes.Code
	}{
		{fmt.Errorf("filtered: %w", engine.ErrSkip), "skipped", codes.Unset},
		{fmt.Errorf("gave up: %w", engine.ErrDeadLettered), "dead_lettered", codes.Error},
		{errBoom, "failed", codes.Error},
	} {
		h, exp := traceHandler(t, newScriptedHandler(c.err))
		if _, err := h.Handle(context.Background(), tracedMessage()); err != c.err { //nolint:errorlint // passed through as is
			t.Errorf("Handle returned %v, want %v", err, c.err)
		}
		s := exp.GetSpans()[0]
		set := attribute.NewSet(s.Attributes...)
		outcome, _ := set.Value(tracing.AttrOutcome)
		if outcome.AsString() != c.outcome || s.Status.Code != c.status {
			t.Errorf("%v: outcome %q status %v, want %q %v", c.err, outcome.AsString(), s.Status.Code, c.outcome, c.status)
		}
	}
}
