package storebench

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The ingest benchmarks model what the outbox does per accepted event: one
// ~200-byte JSON event written under the next 8-byte big-endian key and made
// durable before the writer is answered (before the HTTP 202). Every op is
// timed from the call to the durable return; each benchmark reports events/s
// and the p50/p99 latency of one durable write.
//
//	go test -run '^$' -bench . -benchtime 3s -count 3
const writers = 64

// eventTemplate is a stored event as the engine would keep it; its id is
// overwritten per event by eventValue.
const eventTemplate = `{"id":"00000000-0000-7000-8000-000000000000","stream":"bench/items","name":"ItemCreated","version":1,` +
	`"contentType":"application/json","time":"2026-05-01T12:00:00.000000000Z","payload":{"foo":"a","n":1}}`

// eventValue writes event n into buf (reused by its goroutine) and returns it.
func eventValue(buf []byte, n uint64) []byte {
	buf = append(buf[:0], eventTemplate...)
	id := strconv.AppendUint(make([]byte, 0, 20), n, 16)
	copy(buf[len(`{"id":"00000000-0000-7000-8000-`)+12-len(id):], id)
	return buf
}

// batchValues returns perOp event buffers for one goroutine.
func batchValues(perOp int) [][]byte {
	vs := make([][]byte, perOp)
	for i := range vs {
		vs[i] = make([]byte, 0, len(eventTemplate))
	}
	return vs
}

// ingest runs b.N ops and reports events/s and latency percentiles. With
// parallel set it runs them from `writers` goroutines (b.SetParallelism over
// GOMAXPROCS, as internal/httpapi/bench_test.go does), else from one.
// newWriter is called once per goroutine, before the clock starts, and
// returns the op: write eventsPerOp events durably.
func ingest(b *testing.B, parallel bool, eventsPerOp int, newWriter func() func() error) {
	b.Helper()
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
	)
	loop := func(next func() bool, op func() error) {
		mine := make([]time.Duration, 0, 1024)
		for next() {
			start := time.Now()
			if err := op(); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	}
	b.SetBytes(int64(eventsPerOp * len(eventTemplate)))
	if parallel {
		b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			// RunParallel starts its goroutines after the reset timer, so
			// their set-up is timed; newWriter only allocates buffers.
			loop(pb.Next, newWriter())
		})
	} else {
		op := newWriter()
		i := 0
		b.ResetTimer()
		loop(func() bool { i++; return i <= b.N }, op)
	}
	b.StopTimer()
	report(b, eventsPerOp, latencies)
}

// report adds events/s and the p50/p99 of latencies (µs) to the result.
func report(b *testing.B, eventsPerOp int, latencies []time.Duration) {
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	percentile := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds())
	}
	b.ReportMetric(float64(b.N*eventsPerOp)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(percentile(0.50), "p50-µs")
	b.ReportMetric(percentile(0.99), "p99-µs")
}

// rawFsync is the floor of this disk: append one event to a plain file and
// fdatasync it, which is what one durable commit costs at least.
func rawFsync(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var n uint64
	buf := make([]byte, 0, len(eventTemplate))
	ingest(b, false, 1, func() func() error {
		return func() error {
			n++
			if _, err := f.Write(eventValue(buf, n)); err != nil {
				return err
			}
			return fdatasync(f)
		}
	})
}

// TestEventValue checks the event is the ~200-byte JSON the workload claims.
func TestEventValue(t *testing.T) {
	v := eventValue(nil, 0xabc)
	if len(v) < 190 || len(v) > 210 {
		t.Fatalf("event is %d bytes, want about 200: %s", len(v), v)
	}
	if want := `"id":"00000000-0000-7000-8000-000000000abc"`; !slices.Equal([]byte(want), v[1:1+len(want)]) {
		t.Fatalf("event %s, want id %s", v, want)
	}
}
