package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

// The client's span, as a W3C traceparent.
const (
	clientTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID      = "00f067aa0ba902b7"
	clientTraceparent = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// recorded is a tracer provider whose spans are kept in memory.
func recorded(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

// waitSpans waits until the spans named are ended, and returns them by name;
// a name ended twice fails the test.
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, names ...string) map[string]tracetest.SpanStub {
	t.Helper()
	var byName map[string]tracetest.SpanStub
	enginetest.Eventually(t, fmt.Sprintf("spans %v", names), func() (bool, string) {
		byName = map[string]tracetest.SpanStub{}
		ended := exp.GetSpans()
		seen := make([]string, 0, len(ended))
		for _, s := range ended {
			if _, twice := byName[s.Name]; twice {
				t.Fatalf("span %q ended twice", s.Name)
			}
			byName[s.Name] = s
			seen = append(seen, s.Name)
		}
		for _, n := range names {
			if _, ok := byName[n]; !ok {
				return false, fmt.Sprint(seen)
			}
		}
		return true, ""
	})
	return byName
}

// traceparentOf is the traceparent naming span.
func traceparentOf(span tracetest.SpanStub) string {
	sc := span.SpanContext
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

func expectChild(t *testing.T, child, parent tracetest.SpanStub) {
	t.Helper()
	if child.Parent.SpanID() != parent.SpanContext.SpanID() || child.SpanContext.TraceID() != parent.SpanContext.TraceID() {
		t.Errorf("span %q: parent %s in trace %s, want %q (%s in trace %s)", child.Name,
			child.Parent.SpanID(), child.SpanContext.TraceID(), parent.Name, parent.SpanContext.SpanID(), parent.SpanContext.TraceID())
	}
}

func storedHeaders(t *testing.T, event map[string]any) map[string]any {
	t.Helper()
	h, _ := event["headers"].(map[string]any)
	return h
}

// replyingSink answers each delivery with one event in binary mode, and
// sends the headers of each request it gets on the returned channel.
func replyingSink(t *testing.T) (*httptest.Server, chan http.Header) {
	t.Helper()
	got := make(chan http.Header, 16)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("Ce-Specversion", "1.0")
		w.Header().Set("Ce-Type", "ItemShipped")
		w.Header().Set("Ce-Source", "/shipping")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"shipped":true}`))
	}))
	t.Cleanup(sink.Close)
	return sink, got
}

// One ingest, handled by a projection and by a reactor whose sink replies,
// is one trace: the client's span is the ingest's parent; both handlings
// are children of the ingest; the delivery is the reactor's child and the
// sink receives the delivery's span as its traceparent; the reply is
// stored with the delivery's context, so its own handling joins the trace.
func TestIngestHandledByAProjectionAndAReplyingReactorIsOneTrace(t *testing.T) {
	tp, exp := recorded(t)
	a := newAPI(t, apiOptions{tracerProvider: tp})
	sink, received := replyingSink(t)
	must(t, a.engine.ApplyStream(core.StreamSpec{Name: ns + "/replies"}))
	must(t, a.engine.ApplyProjection(context.Background(), core.ProjectionSpec{Spec: projection.Spec{
		Name: ns + "/shipped", Streams: []string{ns + "/replies"}, Type: projection.Count, Key: "shipped",
	}}))
	must(t, a.engine.ApplyReactor(context.Background(), core.ReactorSpec{
		Name: ns + "/ship", Streams: []string{ns + "/items-events"}, SinkURL: sink.URL, ReplyStream: ns + "/replies",
	}))

	expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"a","n":1}`,
		"traceparent", clientTraceparent, "tracestate", "vendor=1"), http.StatusAccepted)

	spans := waitSpans(t, exp, "ingest team-a/items-events", "projection team-a/items", "reactor team-a/ship",
		"deliver team-a/ship", "projection team-a/shipped")
	ingest, delivery := spans["ingest team-a/items-events"], spans["deliver team-a/ship"]
	if got := ingest.Parent; got.TraceID().String() != clientTraceID || got.SpanID().String() != clientSpanID || !got.IsRemote() {
		t.Errorf("ingest's parent %s/%s (remote %v), want the client's span %s/%s",
			got.TraceID(), got.SpanID(), got.IsRemote(), clientTraceID, clientSpanID)
	}
	if ingest.SpanKind != trace.SpanKindServer || delivery.SpanKind != trace.SpanKindClient {
		t.Errorf("kinds: ingest %v, delivery %v; want server, client", ingest.SpanKind, delivery.SpanKind)
	}
	expectChild(t, spans["projection team-a/items"], ingest)
	expectChild(t, spans["reactor team-a/ship"], ingest)
	expectChild(t, delivery, spans["reactor team-a/ship"])
	expectChild(t, spans["projection team-a/shipped"], delivery)
	if n := len(exp.GetSpans()); n != len(spans) {
		t.Errorf("%d spans, want %d: %v", n, len(spans), exp.GetSpans())
	}

	hdr := <-received
	if got, want := hdr.Get("Traceparent"), traceparentOf(delivery); got != want {
		t.Errorf("the sink got traceparent %q, want the delivery's %q", got, want)
	}
	if got := hdr.Get("Tracestate"); got != "vendor=1" {
		t.Errorf("the sink got tracestate %q, want the client's vendor=1", got)
	}
	event := a.waitStored(itemsPath, 1)[0]
	if got, want := storedHeaders(t, event)["traceparent"], traceparentOf(ingest); got != want {
		t.Errorf("the event keeps traceparent %v, want the ingest's %s", got, want)
	}
	reply := a.waitStored("/v1/namespaces/team-a/streams/replies/events", 1)[0]
	if got, want := storedHeaders(t, reply)["traceparent"], traceparentOf(delivery); got != want {
		t.Errorf("the reply keeps traceparent %v, want the delivery's %s", got, want)
	}
}

// An ingest without a trace context is the root of a new trace, and its
// events carry it.
func TestIngestWithoutTraceparentStartsANewTrace(t *testing.T) {
	tp, exp := recorded(t)
	a := newAPI(t, apiOptions{tracerProvider: tp})
	expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"a","n":1}`), http.StatusAccepted)

	spans := waitSpans(t, exp, "ingest team-a/items-events", "projection team-a/items")
	ingest := spans["ingest team-a/items-events"]
	if ingest.Parent.IsValid() {
		t.Errorf("ingest has parent %s, want none", ingest.Parent.SpanID())
	}
	expectChild(t, spans["projection team-a/items"], ingest)
	event := a.waitStored(itemsPath, 1)[0]
	if got, want := storedHeaders(t, event)["traceparent"], traceparentOf(ingest); got != want {
		t.Errorf("the event keeps traceparent %v, want the ingest's %s", got, want)
	}
}

// Span names stay as few as the streams: a post to a stream that does not
// exist, whose name the client chose, is a span named "ingest" (the name it
// asked for is an attribute).
func TestIngestIntoAStreamThatDoesNotExistIsASpanNamedIngest(t *testing.T) {
	tp, exp := recorded(t)
	a := newAPI(t, apiOptions{tracerProvider: tp})
	expectStatus(t, a.post("/v1/namespaces/team-a/streams/made-up-1/events", "application/json", `{}`), http.StatusNotFound)
	span := waitSpans(t, exp, "ingest")["ingest"]
	attrs := map[string]string{}
	for _, kv := range span.Attributes {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["eventsourcing.stream"] != "team-a/made-up-1" || attrs["http.response.status_code"] != "404" {
		t.Errorf("attributes %v, want the stream asked for and status 404", attrs)
	}
}

// A traceparent that is not one is ignored, not refused.
func TestMalformedTraceparentIsIgnored(t *testing.T) {
	for _, header := range []string{"traceparent", "ce-traceparent"} {
		t.Run(header, func(t *testing.T) {
			tp, exp := recorded(t)
			a := newAPI(t, apiOptions{tracerProvider: tp})
			expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"a","n":1}`,
				header, "00-not-a-trace-01"), http.StatusAccepted)
			ingest := waitSpans(t, exp, "ingest team-a/items-events")["ingest team-a/items-events"]
			if ingest.Parent.IsValid() {
				t.Errorf("ingest has parent %s, want none (a new trace)", ingest.Parent.SpanID())
			}
			event := a.waitStored(itemsPath, 1)[0]
			if got, want := storedHeaders(t, event)["traceparent"], traceparentOf(ingest); got != want {
				t.Errorf("the event keeps traceparent %v, want the ingest's %s", got, want)
			}
		})
	}
}

// CloudEvents carry a trace context as their distributed-tracing extension:
// ce-traceparent in binary mode, the traceparent attribute in structured
// mode. Without a traceparent header, it is the ingest's parent.
func TestCloudEventsTraceparentExtensionIsTheIngestsParent(t *testing.T) {
	structured := `{"specversion":"1.0","id":"e1","source":"/shop","type":"ItemCreated",` +
		`"traceparent":"` + clientTraceparent + `","data":{"foo":"a","n":1}}`
	for name, post := range map[string]func(a *api) response{
		"binary": func(a *api) response {
			return a.post(itemsPath, "application/json", `{"foo":"a","n":1}`,
				"ce-specversion", "1.0", "ce-id", "e1", "ce-type", "ItemCreated", "ce-source", "/shop",
				"ce-traceparent", clientTraceparent)
		},
		"structured": func(a *api) response {
			return a.post(itemsPath, "application/cloudevents+json", structured)
		},
		"batch": func(a *api) response {
			return a.post(itemsPath, "application/cloudevents-batch+json", "["+structured+"]")
		},
	} {
		t.Run(name, func(t *testing.T) {
			tp, exp := recorded(t)
			a := newAPI(t, apiOptions{tracerProvider: tp})
			expectStatus(t, post(a), http.StatusAccepted)
			ingest := waitSpans(t, exp, "ingest team-a/items-events")["ingest team-a/items-events"]
			if got := ingest.Parent; got.TraceID().String() != clientTraceID || got.SpanID().String() != clientSpanID {
				t.Errorf("ingest's parent %s/%s, want the event's %s/%s", got.TraceID(), got.SpanID(), clientTraceID, clientSpanID)
			}
			headers := storedHeaders(t, a.waitStored(itemsPath, 1)[0])
			if headers["traceparent"] != traceparentOf(ingest) || headers["ce-traceparent"] != clientTraceparent {
				t.Errorf("headers %v: want traceparent %s (the ingest's) and ce-traceparent %s (as sent)",
					headers, traceparentOf(ingest), clientTraceparent)
			}
		})
	}
}

// Without tracing (the no-op provider the manager installs without an
// exporter, or no provider at all) nothing is recorded, but a client's
// trace context still travels: the event keeps it and the sink receives it.
func TestWithoutTracingTheClientsTraceContextReachesTheSink(t *testing.T) {
	for name, tp := range map[string]trace.TracerProvider{"no-op provider": noop.NewTracerProvider(), "none installed": nil} {
		t.Run(name, func(t *testing.T) {
			a := newAPI(t, apiOptions{tracerProvider: tp})
			sink, received := replyingSink(t)
			must(t, a.engine.ApplyReactor(context.Background(), core.ReactorSpec{
				Name: ns + "/ship", Streams: []string{ns + "/items-events"}, SinkURL: sink.URL,
			}))
			expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"a","n":1}`,
				"traceparent", clientTraceparent, "tracestate", "vendor=1"), http.StatusAccepted)
			expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"b","n":2}`), http.StatusAccepted)

			events := a.waitStored(itemsPath, 2)
			if h := storedHeaders(t, events[0]); h["traceparent"] != clientTraceparent || h["tracestate"] != "vendor=1" {
				t.Errorf("first event's headers %v, want the client's traceparent and tracestate", h)
			}
			if h := storedHeaders(t, events[1]); h["traceparent"] != nil || h["tracestate"] != nil {
				t.Errorf("an event posted without trace context has headers %v, want no traceparent or tracestate", h)
			}
			first, second := <-received, <-received
			if got := first.Get("Traceparent"); got != clientTraceparent || first.Get("Tracestate") != "vendor=1" {
				t.Errorf("the sink got traceparent %q tracestate %q, want the client's", got, first.Get("Tracestate"))
			}
			if got := second.Get("Traceparent"); got != "" {
				t.Errorf("the sink got traceparent %q for an event without one", got)
			}
		})
	}
}
