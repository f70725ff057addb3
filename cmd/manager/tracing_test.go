package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpEnv unsets the OpenTelemetry variables a developer's shell may set
// (until the test ends), then sets the given ones (name, value, ...).
func otlpEnv(t *testing.T, vars ...string) {
	t.Helper()
	for _, name := range []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER",
	} {
		t.Setenv(name, "") // restored when the test ends
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i+1 < len(vars); i += 2 {
		t.Setenv(vars[i], vars[i+1])
	}
}

func TestWithoutAnOTLPEndpointTheNoopTracerProviderIsInstalled(t *testing.T) {
	otlpEnv(t)
	stop, err := setupTracing(t.Context())
	if err != nil {
		t.Fatalf("setupTracing: %v", err)
	}
	stop()
	if _, ok := otel.GetTracerProvider().(noop.TracerProvider); !ok {
		t.Fatalf("the global tracer provider is %T without OTEL_EXPORTER_OTLP_ENDPOINT, want the no-op one", otel.GetTracerProvider())
	}
}

// The spans go, over OTLP/HTTP by default, to the endpoint the standard
// variable names, as service eventsourcing-operator, and the last ones are
// flushed by Shutdown.
func TestTracesAreExportedToTheOTLPEndpointAsEventsourcingOperator(t *testing.T) {
	for _, c := range []struct{ name, service string }{
		{"", serviceName},
		{"shop-events", "shop-events"},
	} {
		got := make(chan *collectortrace.ExportTraceServiceRequest, 4)
		collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			req := &collectortrace.ExportTraceServiceRequest{}
			if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
				t.Errorf("collector got %s %s (%d bytes), want an OTLP/HTTP export to /v1/traces", r.Method, r.URL.Path, len(body))
			}
			got <- req
			w.Header().Set("Content-Type", "application/x-protobuf")
		}))
		vars := []string{"OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL}
		if c.name != "" {
			vars = append(vars, "OTEL_SERVICE_NAME", c.name)
		}
		otlpEnv(t, vars...)
		tp, err := newTracerProvider(t.Context())
		if err != nil {
			t.Fatalf("newTracerProvider: %v", err)
		}
		_, span := tp.Tracer("test").Start(context.Background(), "ingest shop/orders")
		span.End()
		if err := tp.Shutdown(t.Context()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		collector.Close()
		var req *collectortrace.ExportTraceServiceRequest
		select {
		case req = <-got:
		default:
			t.Fatal("Shutdown returned and the collector got nothing")
		}
		rs := req.GetResourceSpans()
		if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || len(rs[0].GetScopeSpans()[0].GetSpans()) != 1 {
			t.Fatalf("export %v, want one span", req)
		}
		if name := rs[0].GetScopeSpans()[0].GetSpans()[0].GetName(); name != "ingest shop/orders" {
			t.Errorf("span %q, want ingest shop/orders", name)
		}
		service := ""
		for _, kv := range rs[0].GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		if service != c.service {
			t.Errorf("OTEL_SERVICE_NAME=%q: service.name %q, want %q", c.name, service, c.service)
		}
	}
}

func TestAnOTLPProtocolTheManagerCannotSpeakIsRefused(t *testing.T) {
	otlpEnv(t, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	_, err := setupTracing(t.Context())
	if err == nil || !strings.Contains(err.Error(), `"http/json"`) {
		t.Fatalf("setupTracing with protocol http/json = %v, want an error naming it", err)
	}
}
