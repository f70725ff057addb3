package diskstore

import (
	"context"
	"path/filepath"
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

// BenchmarkDiskIngestSingleEvents is issue 6's engine-level figure: 64
// goroutines calling Ingest with one event each on disk storage, the engine
// running (its processor moves events to the store through the same
// committer). "group-commit" is the product; "commit-per-event" is the same
// code with one writer per transaction, the fsync-per-event baseline, in the
// same run.
//
//	go test -run '^$' -bench DiskIngest -benchtime 3s -count 3 ./internal/engine/diskstore/
func BenchmarkDiskIngestSingleEvents(b *testing.B) {
	for _, v := range []struct {
		name       string
		groupLimit int
	}{{"commit-per-event", 1}, {"group-commit", maxGroupWrites}} {
		b.Run(v.name, func(b *testing.B) {
			dir := b.TempDir()
			db, err := open(dir, v.groupLimit)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			ob, err := outboxlog.Open(filepath.Join(dir, "outbox"), outboxlog.Options{Capacity: 100_000, SyncEachWrite: v.groupLimit == 1})
			if err != nil {
				b.Fatal(err)
			}
			e, err := core.New(core.Config{
				Store: NewEventStore(db), Outbox: ob, ReadModels: NewReadModels(db), BatchDelay: ProcessorBatchDelay,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = e.Close() })
			if err := e.ApplyStream(core.StreamSpec{Name: "bench/items", DefaultEventName: "ItemCreated"}); err != nil {
				b.Fatal(err)
			}
			enginebench.RunEngine(b, e)
			ingestParallel(b, e, ob)
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
