package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/test/loadgen"
)

// benchPath is the stream the benchmarks post to.
const benchPath = "/v1/namespaces/bench/streams/items/events"

// reportLoad reports a run's figures on b.
func reportLoad(b *testing.B, res loadgen.Result, eventsPerRequest int) {
	b.Helper()
	if res.Err != "" {
		b.Fatal(res.Err)
	}
	if res.Accepted > 0 {
		res.Report(b, eventsPerRequest)
	}
}

// runHTTPLoadFromAnotherProcess is runHTTPLoad with the clients in a child
// process (this test binary again, running TestHTTPLoadGeneratorProcess),
// as they are in production: the server's Go scheduler then runs only the
// server. On two cores the in-process clients compete with the handlers
// for the same two Ps, and every wait the server has on a syscall (an
// fdatasync with disk storage) holds one of them.
func runHTTPLoadFromAnotherProcess(b *testing.B, h http.Handler, contentType string, body []byte, eventsPerRequest int) {
	b.Helper()
	runSpecFromAnotherProcess(b, h, loadgen.Spec{ContentType: contentType, Body: body}, eventsPerRequest)
}

// runSpecFromAnotherProcess serves h and runs spec against it from a child
// process: b.N requests to the bench stream from benchClients clients. It
// also reports the CPU time this process (the server alone) spent per
// event: on a shared machine a steadier measure of cost than a rate.
func runSpecFromAnotherProcess(b *testing.B, h http.Handler, spec loadgen.Spec, eventsPerRequest int) loadgen.Result {
	b.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	spec.PostURL, spec.Clients, spec.N = srv.URL+benchPath, benchClients, b.N
	b.SetBytes(int64(len(spec.Body)))
	cpuBefore, cpuErr := processCPU()
	b.ResetTimer()
	res, err := loadgen.RunInChild(spec, "TestHTTPLoadGeneratorProcess")
	b.StopTimer()
	cpuAfter, cpuErr2 := processCPU()
	if err != nil {
		b.Fatal(err)
	}
	reportLoad(b, res, eventsPerRequest)
	if cpuErr == nil && cpuErr2 == nil && res.Accepted > 0 {
		events := float64(res.Accepted * eventsPerRequest)
		b.ReportMetric(float64((cpuAfter-cpuBefore).Microseconds())/events, "cpu-µs/event")
	}
	return res
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// TestHTTPLoadGeneratorProcess is the child of
// runHTTPLoadFromAnotherProcess; run on its own it does nothing.
func TestHTTPLoadGeneratorProcess(t *testing.T) { loadgen.ServeChild(t) }
