package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchPath is the stream the benchmarks post to.
const benchPath = "/v1/namespaces/bench/streams/items/events"

// loadResult is what one load run measured.
type loadResult struct {
	Requests int           `json:"requests"`
	Retries  int           `json:"retries"` // 503s, retried after 1 ms
	Elapsed  time.Duration `json:"elapsed"`
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	Err      string        `json:"err,omitempty"`
}

// generateLoad posts body n times from benchClients goroutines, each with
// its own keep-alive connection. A 503 (outbox full) is retried after 1 ms
// (a real client would wait the Retry-After second) and its wait counts in
// that request's latency; any other answer but 202 ends the run.
func generateLoad(url, contentType string, body []byte, n int) loadResult {
	transport := &http.Transport{MaxIdleConns: benchClients, MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	var (
		next      atomic.Int64
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, n)
		res       loadResult
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			mine := make([]time.Duration, 0, n/benchClients+1)
			retries := 0
			var failure error
			for next.Add(1) <= int64(n) && failure == nil {
				began := time.Now()
				for {
					status, err := post(client, url, contentType, body)
					if err == nil && status == http.StatusServiceUnavailable {
						retries++
						time.Sleep(time.Millisecond)
						continue
					}
					if err == nil && status != http.StatusAccepted {
						err = fmt.Errorf("status %d, want 202", status)
					}
					failure = err
					break
				}
				mine = append(mine, time.Since(began))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			res.Retries += retries
			if failure != nil && res.Err == "" {
				res.Err = failure.Error()
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Requests = len(latencies)
	if len(latencies) > 0 {
		slices.Sort(latencies)
		res.P50 = latencies[(len(latencies)-1)/2]
		res.P99 = latencies[(len(latencies)-1)*99/100]
	}
	return res
}

// reportLoad reports a run's figures on b.
func reportLoad(b *testing.B, res loadResult, eventsPerRequest int) {
	b.Helper()
	if res.Err != "" {
		b.Fatal(res.Err)
	}
	if res.Requests == 0 {
		return
	}
	b.ReportMetric(float64(res.Requests*eventsPerRequest)/res.Elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(res.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(res.Retries), "503s")
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

// loadgenEnv carries a load run to the child process: JSON of loadRequest.
const loadgenEnv = "EVENTSOURCING_BENCH_LOADGEN"

type loadRequest struct {
	URL         string `json:"url"`
	ContentType string `json:"contentType"`
	Body        []byte `json:"body"`
	N           int    `json:"n"`
}

// runHTTPLoadFromAnotherProcess is runHTTPLoad with the clients in a child
// process (this test binary again, running TestHTTPLoadGeneratorProcess),
// as they are in production: the server's Go scheduler then runs only the
// server. On two cores the in-process clients compete with the handlers
// for the same two Ps, and every wait the server has on a syscall (an
// fdatasync with disk storage) holds one of them.
func runHTTPLoadFromAnotherProcess(b *testing.B, h http.Handler, contentType string, body []byte, eventsPerRequest int) {
	b.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := json.Marshal(loadRequest{URL: srv.URL + benchPath, ContentType: contentType, Body: body, N: b.N})
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHTTPLoadGeneratorProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), loadgenEnv+"="+string(req))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	out, err := cmd.Output()
	b.StopTimer()
	if err != nil {
		b.Fatalf("load generator process: %v: %s", err, stderr.String())
	}
	_, line, ok := strings.Cut(string(out), "loadgen-result: ")
	line, _, _ = strings.Cut(line, "\n")
	var res loadResult
	if !ok {
		b.Fatalf("load generator process printed no result: %s", out)
	}
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		b.Fatalf("load generator result %q: %v", line, err)
	}
	reportLoad(b, res, eventsPerRequest)
}

// TestHTTPLoadGeneratorProcess is the child of
// runHTTPLoadFromAnotherProcess; run on its own it does nothing.
func TestHTTPLoadGeneratorProcess(t *testing.T) {
	spec := os.Getenv(loadgenEnv)
	if spec == "" {
		t.Skip("the load generator of runHTTPLoadFromAnotherProcess")
	}
	var req loadRequest
	if err := json.Unmarshal([]byte(spec), &req); err != nil {
		t.Fatal(err)
	}
	res := generateLoad(req.URL, req.ContentType, req.Body, req.N)
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("loadgen-result: %s\n", out)
}
