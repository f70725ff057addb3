package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/diskstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
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
// handler with a bare net/http handler that reads the body and answers 202:
// the ceiling of this machine's HTTP stack.
func BenchmarkHTTPSingleEvent(b *testing.B) {
	body := []byte(`{"foo":"a","n":1}`)
	b.Run("bare-net-http", func(b *testing.B) {
		bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusAccepted)
		})
		runHTTPLoad(b, bare, "application/json", body, 1)
	})
	b.Run("eventsourcing", func(b *testing.B) {
		runHTTPLoad(b, benchHandler(b, core.Config{}), "application/json", body, 1)
	})
	// Durable: each 202 waits for the fsync that covers its event.
	b.Run("eventsourcing-disk", func(b *testing.B) {
		st, err := diskstore.OpenStorage(b.TempDir(), 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		cfg := core.Config{Store: st.Store, Outbox: st.Outbox, ReadModels: st.ReadModels}
		syncs := st.Outbox.Syncs()
		runHTTPLoad(b, benchHandler(b, cfg), "application/json", body, 1)
		if n := st.Outbox.Syncs() - syncs; n > 0 {
			b.ReportMetric(float64(b.N)/float64(n), "events/sync")
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "syncs/s")
		}
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

// runHTTPLoad posts body b.N times from benchClients goroutines, each with
// its own keep-alive connection, and reports events/s and latency
// percentiles.
func runHTTPLoad(b *testing.B, h http.Handler, contentType string, body []byte, eventsPerRequest int) {
	b.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	transport := &http.Transport{MaxIdleConns: benchClients, MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	url := srv.URL + "/v1/namespaces/bench/streams/items/events"

	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
		retries   int
	)
	b.SetParallelism((benchClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, 1024)
		myRetries := 0
		for pb.Next() {
			start := time.Now()
			for {
				status, err := post(client, url, contentType, body)
				if err != nil {
					b.Error(err)
					return
				}
				if status == http.StatusServiceUnavailable {
					myRetries++
					time.Sleep(time.Millisecond)
					continue
				}
				if status != http.StatusAccepted {
					b.Errorf("status %d, want 202", status)
					return
				}
				break
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		retries += myRetries
		mu.Unlock()
	})
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	percentile := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds())
	}
	b.ReportMetric(float64(b.N*eventsPerRequest)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(percentile(0.50), "p50-µs")
	b.ReportMetric(percentile(0.99), "p99-µs")
	b.ReportMetric(float64(retries), "503s")
}

// post sends one request and drains the answer so the connection is reused.
func post(client *http.Client, url, contentType string, body []byte) (int, error) {
	resp, err := client.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
