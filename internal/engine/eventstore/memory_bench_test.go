package eventstore_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore/eventstoretest"
)

// benchEvents returns n events shaped like ingested ones: a 36-char id, a
// name, a content type, a correlation id and a 100-byte payload.
func benchEvents(n int) []engine.Message {
	payload := bytes.Repeat([]byte("x"), 100)
	out := make([]engine.Message, n)
	for i := range out {
		out[i] = engine.Message{
			ID:            fmt.Sprintf("00000000-0000-7000-8000-%012d", i),
			Name:          "ItemCreated",
			ContentType:   "application/json",
			CorrelationID: fmt.Sprintf("11111111-0000-7000-8000-%012d", i),
			Payload:       payload,
		}
	}
	return out
}

func BenchmarkMemoryAppend(b *testing.B) {
	s := eventstore.NewMemory()
	defer func() { _ = s.Close() }()
	events := benchEvents(b.N)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Append(ctx, "items", eventstore.Any, events[i:i+1]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkMemoryAppendBatch100(b *testing.B) {
	const batch = 100
	s := eventstore.NewMemory()
	defer func() { _ = s.Close() }()
	events := benchEvents(b.N * batch)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Append(ctx, "items", eventstore.Any, events[i*batch:(i+1)*batch]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMemoryRead reads pages of 100 events from a 100k-event stream.
func BenchmarkMemoryRead(b *testing.B) {
	const (
		stored = 100_000
		page   = 100
	)
	s := eventstore.NewMemory()
	defer func() { _ = s.Close() }()
	ctx := b.Context()
	if _, err := s.Append(ctx, "items", eventstore.Any, benchEvents(stored)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		after := uint64(i*page) % stored
		got, err := s.Read(ctx, "items", after, page)
		if err != nil || len(got) != page {
			b.Fatalf("Read after %d: got %d events, %v; want %d", after, len(got), err, page)
		}
	}
	b.ReportMetric(float64(b.N*page)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMemoryReadKey reads one key's 100 events from a stream of 1k
// events and from one of 1M (see eventstoretest.RunReadKeyBenchmark).
func BenchmarkMemoryReadKey(b *testing.B) {
	eventstoretest.RunReadKeyBenchmark(b, func(*testing.B) eventstore.Store { return eventstore.NewMemory() })
}
