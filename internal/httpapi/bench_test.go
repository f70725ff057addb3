package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/disk"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
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
		st, err := disk.Open(b.TempDir(), disk.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		cfg := core.Config{
			Store: st.Store, Outbox: st.Outbox, ReadModels: st.ReadModels, BatchDelay: disk.ProcessorBatchDelay,
		}
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
// the processor appending to the event store behind it.
func benchHandler(b *testing.B, cfg core.Config) http.Handler {
	b.Helper()
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
	h, err := httpapi.NewHandler(httpapi.Config{Engine: e, Log: logr.Discard()})
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
