package disk

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outboxlog"
)

// BenchmarkDiskIngestSingleEvents is durable ingest at the engine level:
// 64 goroutines calling Ingest with one event each on disk storage, the
// engine running (its processor moves events to the data file). "group-commit"
// is the product; "commit-per-event" is the same code with a sync per write
// in both files (SyncEachWrite), the fsync-per-event baseline, in the same
// run.
//
//	go test -run '^$' -bench DiskIngest -benchtime 3s -count 3 ./internal/engine/disk/
func BenchmarkDiskIngestSingleEvents(b *testing.B) {
	for _, v := range []struct {
		name          string
		syncEachWrite bool
	}{{"commit-per-event", true}, {"group-commit", false}} {
		b.Run(v.name, func(b *testing.B) {
			st, err := Open(b.TempDir(), Options{OutboxCapacity: 100_000, SyncEachWrite: v.syncEachWrite})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = st.Close() })
			e, err := core.New(core.Config{
				Store: st.Store, Outbox: st.Outbox, ReadModels: st.ReadModels, BatchDelay: ProcessorBatchDelay,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = e.Close() })
			if err := e.ApplyStream(core.StreamSpec{Name: "bench/items", DefaultEventName: "ItemCreated"}); err != nil {
				b.Fatal(err)
			}
			enginebench.RunEngine(b, e)
			ingestParallel(b, e, st.Outbox)
		})
	}
}

// ingestParallel runs b.N single-event Ingests from 64 goroutines and
// reports events/s, latency percentiles and events per outbox fdatasync.
func ingestParallel(b *testing.B, e *core.Engine, ob *outboxlog.Log) {
	payload := []byte(`{"foo":"a","n":1}`)
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
	)
	syncs := ob.Syncs()
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, 256)
		ev := []core.Event{{Payload: payload}}
		for pb.Next() {
			start := time.Now()
			for {
				_, err := e.Ingest(context.Background(), "bench/items", ev)
				if err == nil {
					break
				}
				if err != outbox.ErrFull {
					b.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 { return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) }
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	if n := ob.Syncs() - syncs; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "events/sync")
	}
}
