// Package enginebench holds the engine's end-to-end benchmarks as functions, so
// that the product's own tests and the side-by-side comparison with Watermill
// (hack/bench, a separate module) run exactly the same code.
package enginebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

// itemCreated names every event the benchmarks make.
const itemCreated = "ItemCreated"

// payload is the item of the README's walkthrough.
var payload = []byte(`{"foo":"a","n":1}`)

// newEngine builds an engine as production runs it: the logger at info with
// per-event lines at debug, writing nowhere; Prometheus metrics on.
func newEngine(b *testing.B, br broker.Broker, ob outbox.Outbox) *core.Engine {
	b.Helper()
	return buildEngine(b, core.Config{Broker: br, Outbox: ob})
}

// newEngineWithStore is newEngine over the given event store, which the
// benchmark reads to see when every event is stored.
func newEngineWithStore(b *testing.B, store eventstore.Store, ob outbox.Outbox) *core.Engine {
	b.Helper()
	return buildEngine(b, core.Config{Store: store, Outbox: ob})
}

// buildEngine fills cfg's metrics and logger as production sets them.
func buildEngine(b *testing.B, cfg core.Config) *core.Engine {
	b.Helper()
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	cfg.Metrics = m
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e, err := core.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// startProjections applies streams s0..s(n-1) and one Append projection per
// stream with the default pipeline, and runs the engine until b ends.
func startProjections(b *testing.B, e *core.Engine, streams int) {
	b.Helper()
	ctx := context.Background()
	for i := range streams {
		name := "s" + strconv.Itoa(i)
		if err := e.ApplyStream(core.StreamSpec{Name: name, DefaultEventName: itemCreated, BacklogLimit: 1000}); err != nil {
			b.Fatal(err)
		}
		err := e.ApplyProjection(ctx, core.ProjectionSpec{Spec: projection.Spec{
			Name: "items-" + name, Streams: []string{name}, StartFrom: projection.Beginning,
			Type: projection.Append, Key: "items",
		}})
		if err != nil {
			b.Fatal(err)
		}
	}
	RunEngine(b, e)
}

// waitProcessed waits until the projections have settled want events in all.
func waitProcessed(b *testing.B, e *core.Engine, streams int, want uint64) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var got uint64
		for i := range streams {
			st, err := e.ProjectionStats(context.Background(), "items-s"+strconv.Itoa(i))
			if err != nil {
				b.Fatal(err)
			}
			got += st.Processed + st.DeadLettered
		}
		if got >= want {
			if got > want {
				b.Fatalf("projections settled %d events, want %d", got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("projections settled %d of %d events before the deadline", got, want)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// Throughput measures one event going broker -> router -> the default
// pipeline (Deserialize JSON, Logging, Retry, Metrics, Dedupe) -> an Append
// projection, in order on one stream. One op is one event.
func Throughput(b *testing.B) { throughput(b, 1) }

// ThroughputStreams is Throughput spread over several streams, each with its
// own projection, published from one goroutine.
func ThroughputStreams(b *testing.B, streams int) { throughput(b, streams) }

func throughput(b *testing.B, streams int) {
	br := broker.NewMemory()
	e := newEngine(b, br, nil)
	startProjections(b, e, streams)
	waitSubscribed(b, br, streams)
	streamNames := make([]string, streams)
	for i := range streamNames {
		streamNames[i] = "s" + strconv.Itoa(i)
	}

	// Each message is built as it is published, with the id and sequences
	// the event store would have assigned: building all b.N up front would
	// leave a huge pointerful slice for the garbage collector to scan, which
	// slows every part of the run.
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		msg := engine.Message{
			ID: "evt-" + strconv.Itoa(i), Name: itemCreated, Stream: streamNames[i%streams],
			Sequence: uint64(i/streams + 1), Position: uint64(i + 1), Time: now,
			ContentType: "application/json", Payload: payload,
		}
		if err := br.Publish(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	waitProcessed(b, e, streams, uint64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// waitSubscribed waits until every projection's live subscription exists, so
// published events are not all read back from the (empty) store.
func waitSubscribed(b *testing.B, br broker.Broker, streams int) {
	b.Helper()
	enginetest.Eventually(b, "a subscriber on every stream", func() (bool, string) {
		for i := range streams {
			if br.Subscribers("s"+strconv.Itoa(i)) == 0 {
				return false, fmt.Sprintf("stream s%d has none", i)
			}
		}
		return true, ""
	})
}

// FullPath measures one event from ingest to read model: validate and
// enqueue into the outbox (batches of batch), the processor appending to the
// event store and publishing, the router and default pipeline, an Append
// projection. One op is one event.
func FullPath(b *testing.B, batch int) {
	e := newEngine(b, nil, outbox.NewMemory(100_000))
	startProjections(b, e, 1)
	ctx := context.Background()
	events := make([]core.Event, batch)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		n := min(batch, b.N-sent)
		for i := range n {
			events[i] = core.Event{ID: fmt.Sprintf("evt-%d", sent+i), ContentType: "application/json", Payload: payload}
		}
		_, err := e.Ingest(ctx, "s0", events[:n])
		if errors.Is(err, outbox.ErrFull) {
			time.Sleep(100 * time.Microsecond) // backpressure: the processor catches up
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	waitProcessed(b, e, 1, uint64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
