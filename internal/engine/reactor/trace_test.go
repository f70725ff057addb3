package reactor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/cloudevents"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/tracing"
)

// Each attempt is a client span, the child of the event's trace context;
// the request names it as its traceparent, and the replies are appended
// within it. The span shows the sink's address, not its password.
func TestSinkDeliversInAClientSpanThatTheRequestAndTheRepliesCarry(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	var sent string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent = r.Header.Get("Traceparent")
		if r.Header.Get("Ce-Id") == "fails" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Ce-Specversion", "1.0")
		w.Header().Set("Ce-Type", "Shipped")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	var replyIn trace.SpanContext
	sinkURL := strings.Replace(srv.URL, "http://", "http://user:secret@", 1) + "/hook"
	s, err := NewSink(SinkConfig{
		URL: sinkURL, Client: NewClient(true), Reactor: "shop/ship", Tracer: tp.Tracer("test"),
		Reply: func(ctx context.Context, _ engine.Message, _ []cloudevents.Event) error {
			replyIn = trace.SpanContextFromContext(ctx)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	msg := engine.Message{ID: "e1", Name: "OrderPaid", Stream: "shop/orders", Sequence: 3,
		Headers: map[string]string{tracing.HeaderTraceparent: parent}}
	if _, err := s.Handle(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	msg.ID = "fails"
	if _, err := s.Handle(context.Background(), msg); err == nil {
		t.Fatal("a 503 delivered, want an error")
	}

	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want one per attempt", len(spans))
	}
	ok, failed := spans[0], spans[1]
	if ok.Name != "deliver shop/ship" || ok.SpanKind != trace.SpanKindClient || ok.Parent.SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("span %q kind %v parent %s, want deliver shop/ship, client, the event's span", ok.Name, ok.SpanKind, ok.Parent.SpanID())
	}
	if want := "00-" + failed.SpanContext.TraceID().String() + "-" + failed.SpanContext.SpanID().String() + "-01"; sent != want {
		t.Errorf("the sink got traceparent %q, want the attempt's %q", sent, want)
	}
	if replyIn.SpanID() != ok.SpanContext.SpanID() {
		t.Errorf("replies appended in span %s, want the delivery's %s", replyIn.SpanID(), ok.SpanContext.SpanID())
	}
	attrs := attribute.NewSet(ok.Attributes...)
	if v, _ := attrs.Value("url.full"); v.AsString() != srv.URL+"/hook" {
		t.Errorf("url.full %q, want %q (no user info)", v.AsString(), srv.URL+"/hook")
	}
	if v, _ := attrs.Value("http.response.status_code"); v.AsInt64() != http.StatusOK {
		t.Errorf("status code attribute %v, want 200", v.String())
	}
	if ok.Status.Code != codes.Unset || failed.Status.Code != codes.Error {
		t.Errorf("statuses %v and %v, want unset and error", ok.Status.Code, failed.Status.Code)
	}
}
