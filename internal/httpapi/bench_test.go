package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/disk"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
	"github.com/eventsourcing-dev/eventsourcing-operator/test/loadgen"
)

// The HTTP benchmarks run a real loopback listener and 64 keep-alive
// clients, the load the targets are stated for. Each benchmark
// reports events/s and the p50/p99 latency of a request; a 503 (outbox
// full) is counted and retried after 1ms (a real client would wait the
// Retry-After second), and its wait counts in that request's latency.
//
//	make bench-http
const benchClients = 64

// BenchmarkHTTPSingleEvent compares one JSON event per request through our
// handler, on memory and on disk storage, with a bare net/http handler that
// reads the body and answers 202: the ceiling of this machine's HTTP stack.
// The clients run in this process.
func BenchmarkHTTPSingleEvent(b *testing.B) {
	singleEventBenchmarks(b, runHTTPLoad)
}

// BenchmarkHTTPSingleEventClientsInAnotherProcess is the same with the 64
// clients in a child process, where they are in production.
func BenchmarkHTTPSingleEventClientsInAnotherProcess(b *testing.B) {
	singleEventBenchmarks(b, runHTTPLoadFromAnotherProcess)
}

// loadRunner serves h and posts body b.N times.
type loadRunner func(b *testing.B, h http.Handler, contentType string, body []byte, eventsPerRequest int)

func singleEventBenchmarks(b *testing.B, run loadRunner) {
	body := []byte(`{"foo":"a","n":1}`)
	b.Run("bare-net-http", func(b *testing.B) {
		bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusAccepted)
		})
		run(b, bare, "application/json", body, 1)
	})
	b.Run("eventsourcing", func(b *testing.B) {
		run(b, benchHandler(b, core.Config{}), "application/json", body, 1)
	})
	// Durable: each 202 waits for the fdatasync that covers its event.
	b.Run("eventsourcing-disk", func(b *testing.B) {
		cfg, st := diskConfig(b)
		syncs, commits := st.Outbox.Syncs(), st.DB.Commits()
		run(b, benchHandler(b, cfg), "application/json", body, 1)
		if n := st.Outbox.Syncs() - syncs; n > 0 {
			b.ReportMetric(float64(b.N)/float64(n), "events/sync")
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "syncs/s")
		}
		// The processor's commits to the event store.
		b.ReportMetric(float64(st.DB.Commits()-commits)/b.Elapsed().Seconds(), "store-commits/s")
	})
}

// diskConfig is the engine's configuration on disk storage in a
// directory of b's own, as the manager's --storage=disk wires it.
func diskConfig(b *testing.B) (core.Config, *disk.Storage) {
	b.Helper()
	st, err := disk.Open(b.TempDir(), disk.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	return core.Config{
		Store: st.Store, Outbox: st.Outbox, ReadModels: st.ReadModels, BatchDelay: disk.ProcessorBatchDelay,
	}, st
}

// BenchmarkHTTPKeyedAppends is single events posted by 64 clients in
// another process to the stream (unkeyed), each client to a key of its
// own (keyed), and each to its key with If-Match at the version its last
// 202 gave (if-match), on memory and disk storage: what entity keys and
// optimistic concurrency cost in the handler and the engine. With the
// clients in another process, -cpuprofile profiles the server alone.
// test/perf's BenchmarkManagerConditionalAppends measures the same
// through the manager binary.
func BenchmarkHTTPKeyedAppends(b *testing.B) {
	body := []byte(`{"foo":"a","n":1}`)
	for _, storage := range []string{"memory", "disk"} {
		for _, mode := range []struct {
			name           string
			keyed, ifMatch bool
		}{{"unkeyed", false, false}, {"keyed", true, false}, {"if-match", true, true}} {
			b.Run(storage+"/"+mode.name, func(b *testing.B) {
				var cfg core.Config
				if storage == "disk" {
					cfg, _ = diskConfig(b)
				}
				spec := loadgen.Spec{ContentType: "application/json", Body: body}
				if mode.keyed {
					// Keys of this run's own, which start empty.
					spec.KeyPrefix, spec.IfMatch = fmt.Sprintf("run-%d", time.Now().UnixNano()), mode.ifMatch
				}
				res := runSpecFromAnotherProcess(b, benchHandler(b, cfg), spec, 1)
				if res.Conflicts > 0 {
					b.Errorf("%d appends were answered 412 although each key had one writer", res.Conflicts)
				}
			})
		}
	}
}

// BenchmarkHTTPBatchNDJSON posts batches of 100 JSON events as NDJSON.
func BenchmarkHTTPBatchNDJSON(b *testing.B) {
	const perBatch = 100
	var body bytes.Buffer
	for i := range perBatch {
		fmt.Fprintf(&body, `{"foo":"item-%d","n":%d}`+"\n", i, i)
	}
	runHTTPLoad(b, benchHandler(b, core.Config{}), "application/x-ndjson", body.Bytes(), perBatch)
}

// benchHandler is our handler over a running engine (storage from cfg,
// memory when empty) with one JSON
// stream and no projection: what is measured is ingest up to the outbox and
// the processor appending to the event store behind it, with metrics on as
// in the manager and tracing off as in a manager without an OTLP endpoint
// (the no-op tracer provider).
func benchHandler(b *testing.B, cfg core.Config) http.Handler {
	b.Helper()
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return benchHandlerWith(b, cfg, m)
}

// benchHandlerWith is benchHandler with metrics m (nil: none).
func benchHandlerWith(b *testing.B, cfg core.Config, m *metrics.Metrics) http.Handler {
	b.Helper()
	cfg.Metrics = m
	cfg.TracerProvider = noop.NewTracerProvider()
	e, err := core.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	spec := core.StreamSpec{Name: "bench/items", ContentTypes: []string{serde.JSON}, DefaultEventName: "ItemCreated"}
	if err := e.ApplyStream(spec); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	enginebench.RunEngine(b, e)
	h, err := httpapi.NewHandler(httpapi.Config{Engine: e, Metrics: m, Log: logr.Discard(), TracerProvider: cfg.TracerProvider})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// runHTTPLoad serves h on a loopback listener and posts body b.N times
// from benchClients goroutines of this process, each with its own
// keep-alive connection, then reports events/s and latency percentiles.
func runHTTPLoad(b *testing.B, h http.Handler, contentType string, body []byte, eventsPerRequest int) {
	b.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	res := loadgen.Generate(loadgen.Spec{
		PostURL: srv.URL + benchPath, ContentType: contentType, Body: body, Clients: benchClients, N: b.N,
	})
	b.StopTimer()
	reportLoad(b, res, eventsPerRequest)
}

// BenchmarkIngestHandler calls the handler on this goroutine, without a
// network, with one JSON event per request, with metrics off and on: what
// the metrics cost an ingest, without the noise of 64 clients.
func BenchmarkIngestHandler(b *testing.B) {
	body := []byte(`{"foo":"a","n":1}`)
	for _, on := range []bool{false, true} {
		name := "metrics-off"
		if on {
			name = "metrics-on"
		}
		b.Run(name, func(b *testing.B) {
			var m *metrics.Metrics
			if on {
				var err error
				if m, err = metrics.New(prometheus.NewRegistry()); err != nil {
					b.Fatal(err)
				}
			}
			h := benchHandlerWith(b, core.Config{}, m)
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, benchPath, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusAccepted {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
