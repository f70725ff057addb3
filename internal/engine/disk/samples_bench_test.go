package disk

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

// sampleProjections are the quick start's three projections
// (config/samples), which make bench-manager runs too.
var sampleProjections = []projection.Spec{
	{Name: "bench/items", Type: projection.Append, Key: "items"},
	{Name: "bench/item-count", Type: projection.Count, Key: "ItemCreated", EventNames: []string{"ItemCreated"}},
	{Name: "bench/latest-item-by-foo", Type: projection.Latest, KeyExpression: "event.payload.foo"},
}

// BenchmarkDiskIngestWithProjections is what one single event costs the
// engine from Ingest to the sample projections' read models, memory
// storage against disk, in the process: 64 goroutines ingest b.N events,
// then the benchmark waits until every projection has applied them. It
// reports the process's CPU µs and the bytes and allocations per event,
// steadier measures of a change than a rate on a shared machine.
//
//	go test -run '^$' -bench DiskIngestWithProjections -benchtime 50000x -count 3 ./internal/engine/disk/
func BenchmarkDiskIngestWithProjections(b *testing.B) {
	for _, storage := range []string{"memory", "disk"} {
		b.Run("storage="+storage, func(b *testing.B) {
			cfg := core.Config{}
			var st *Storage
			if storage == "disk" {
				var err error
				st, err = Open(b.TempDir(), Options{OutboxCapacity: 100_000})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = st.Close() })
				cfg = core.Config{Store: st.Store, Outbox: st.Outbox, ReadModels: st.ReadModels, BatchDelay: ProcessorBatchDelay}
			}
			e, err := core.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = e.Close() })
			const stream = "bench/items-events"
			if err := e.ApplyStream(core.StreamSpec{Name: stream, DefaultEventName: "ItemCreated"}); err != nil {
				b.Fatal(err)
			}
			for _, p := range sampleProjections {
				p.Streams = []string{stream}
				if err := e.ApplyProjection(context.Background(), core.ProjectionSpec{Spec: p}); err != nil {
					b.Fatal(err)
				}
			}
			enginebench.RunEngine(b, e)
			measureIngest(b, e, stream, st)
		})
	}
}

// measureIngest ingests b.N events from 64 goroutines and waits until the
// sample projections have applied them all. With disk storage (st) it
// also reports how many events share a commit of the data file and an
// fdatasync of the outbox log.
func measureIngest(b *testing.B, e *core.Engine, stream string, st *Storage) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cpu := processCPU(b)
	var commits, syncs uint64
	if st != nil {
		commits, syncs = st.DB.Commits(), st.Outbox.Syncs()
	}
	start := time.Now()
	var n atomic.Int64
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ev := []core.Event{{Payload: fmt.Appendf(nil, `{"foo":"load","n":%d}`, n.Add(1))}}
			for {
				_, err := e.Ingest(context.Background(), stream, ev)
				if err == nil {
					break
				}
				if err != outbox.ErrFull {
					b.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	})
	waitApplied(b, e, uint64(b.N))
	b.StopTimer()
	cpu = processCPU(b) - cpu
	runtime.ReadMemStats(&after)
	events := float64(b.N)
	b.ReportMetric(events/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/events, "cpu-µs/event")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/events, "B/event")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/events, "allocs/event")
	if st != nil {
		b.ReportMetric(events/float64(max(1, st.DB.Commits()-commits)), "events/commit")
		b.ReportMetric(events/float64(max(1, st.Outbox.Syncs()-syncs)), "events/outbox-sync")
	}
}

// waitApplied waits until every sample projection has settled want events
// (the stream holds no others).
func waitApplied(b *testing.B, e *core.Engine, want uint64) {
	deadline := time.Now().Add(5 * time.Minute)
	for _, p := range sampleProjections {
		for {
			st, err := e.ProjectionStats(context.Background(), p.Name)
			if err != nil {
				b.Fatal(err)
			}
			if st.Processed+st.DeadLettered >= want {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s settled %d of %d events before the deadline", p.Name, st.Processed+st.DeadLettered, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// processCPU is the CPU time the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
