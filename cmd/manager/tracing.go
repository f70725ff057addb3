package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace/noop"
	ctrl "sigs.k8s.io/controller-runtime"
)

// serviceName names the manager in its spans unless OTEL_SERVICE_NAME (or
// service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const serviceName = "eventsourcing-operator"

// setupTracing installs, as the global tracer provider that the engine and
// the HTTP API use, an OpenTelemetry SDK that exports spans over OTLP, when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.
// The exporter and the SDK read the other standard variables themselves
// (protocol, headers, timeout, sampler, batching, resource attributes).
// Without an endpoint it installs the no-op provider: no span is started,
// and the trace context of events is only passed on. The returned function
// flushes the spans not exported yet (for up to flushTimeout); call it last.
func setupTracing(ctx context.Context) (stop func(), err error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		otel.SetTracerProvider(noop.NewTracerProvider())
		return func() {}, nil
	}
	tp, err := newTracerProvider(ctx)
	if err != nil {
		return nil, err
	}
	otel.SetLogger(ctrl.Log.WithName("otel"))
	otel.SetTracerProvider(tp)
	setupLog.Info("exporting traces over OTLP", "protocol", otlpProtocol())
	return func() {
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
		defer cancel()
		if err := tp.Shutdown(flush); err != nil {
			setupLog.Error(err, "flushing the last spans")
		}
	}, nil
}

// flushTimeout bounds the export of the last spans on exit.
const flushTimeout = 5 * time.Second

// newTracerProvider is the SDK with a batching OTLP exporter of the
// protocol the environment names (http/protobuf unless it says grpc).
func newTracerProvider(ctx context.Context) (*sdktrace.TracerProvider, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol := otlpProtocol(); protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("OTLP protocol %q: this manager exports traces over grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("set up the OTLP trace exporter: %w", err)
	}
	// Later detectors win: the environment names the service over the default.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("describe the manager for traces (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// otlpProtocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
// OTEL_EXPORTER_OTLP_PROTOCOL, else the specification's default.
func otlpProtocol() string {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := os.Getenv(name); v != "" {
			return v
		}
	}
	return "http/protobuf"
}
