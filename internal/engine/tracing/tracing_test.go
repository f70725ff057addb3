package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func TestFromHeadersReadsTheEventsTraceContext(t *testing.T) {
	ctx := FromHeaders(context.Background(), map[string]string{HeaderTraceparent: traceparent, HeaderTracestate: "vendor=1"})
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsRemote() || sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" ||
		sc.SpanID().String() != "b7ad6b7169203331" || !sc.IsSampled() || sc.TraceState().Get("vendor") != "1" {
		t.Fatalf("span context %+v, want the headers' remote, sampled one with their tracestate", sc)
	}
	for _, headers := range []map[string]string{nil, {HeaderTracestate: "vendor=1"}, {HeaderTraceparent: "00-zz-01"}} {
		if sc := trace.SpanContextFromContext(FromHeaders(context.Background(), headers)); sc.IsValid() {
			t.Errorf("headers %v gave span context %v, want none", headers, sc)
		}
	}
}

func TestContextOfIsWhatFromHeadersReads(t *testing.T) {
	in := map[string]string{HeaderTraceparent: traceparent, HeaderTracestate: "vendor=1"}
	c, ok := ContextOf(FromHeaders(context.Background(), in))
	if !ok || c.Traceparent() != traceparent {
		t.Fatalf("ContextOf = %v, %v; want %s", c, ok, traceparent)
	}
	out := c.Set(nil)
	if out[HeaderTraceparent] != traceparent || out[HeaderTracestate] != "vendor=1" {
		t.Errorf("Set(nil) = %v, want %v", out, in)
	}
	if _, ok := ContextOf(context.Background()); ok {
		t.Error("ContextOf(a context without span) is ok, want not")
	}
}

// A tracestate belongs to its traceparent: setting a context without one
// removes the one the headers held.
func TestSetReplacesTheWholeTraceContext(t *testing.T) {
	c, _ := ContextOf(FromHeaders(context.Background(), map[string]string{HeaderTraceparent: traceparent}))
	headers := map[string]string{HeaderTraceparent: "00-old", HeaderTracestate: "old=1", "ce-source": "/shop"}
	c.Set(headers)
	if headers[HeaderTraceparent] != traceparent || headers[HeaderTracestate] != "" || headers["ce-source"] != "/shop" {
		t.Fatalf("headers %v, want the new traceparent, no tracestate and ce-source kept", headers)
	}
	if _, ok := headers[HeaderTracestate]; ok {
		t.Fatalf("tracestate kept: %v", headers)
	}
}
