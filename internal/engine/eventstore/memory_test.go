package eventstore_test

import (
	"bytes"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore/eventstoretest"
)

func TestMemoryConformance(t *testing.T) {
	eventstoretest.Run(t, eventstoretest.Features{Compaction: true, GlobalPosition: true},
		func(*testing.T, string) eventstore.Store { return eventstore.NewMemory() })
}

// Headers are kept encoded beside the payload: every name and value comes
// back as it was, long or empty, and each event gets its own map.
func TestMemoryKeepsEveryHeaderNameAndValue(t *testing.T) {
	s := eventstore.NewMemory()
	defer func() { _ = s.Close() }()
	headers := []map[string]string{
		{"ce-source": "/items", "ce-specversion": "1.0"},
		nil,
		{"ce-subject": strings.Repeat("s", 300), "ce-empty": "", "": "no name", "traceparent": "00-é-01"},
		{"only": "one"},
	}
	events := make([]engine.Message, len(headers))
	for i, h := range headers {
		events[i] = engine.Message{ID: fmt.Sprint(i), Payload: []byte(`{}`), Headers: h}
	}
	if _, err := s.Append(t.Context(), "s", eventstore.Any, events); err != nil {
		t.Fatal(err)
	}
	for range 2 { // each read gets maps of its own
		got, err := s.Read(t.Context(), "s", 0, 0)
		if err != nil || len(got) != len(headers) {
			t.Fatalf("Read: got %d events, %v; want %d", len(got), err, len(headers))
		}
		for i, m := range got {
			if !maps.Equal(m.Headers, headers[i]) || (headers[i] == nil) != (m.Headers == nil) {
				t.Errorf("event %d: got headers %q, want %q", i, m.Headers, headers[i])
			}
			if m.ID != fmt.Sprint(i) || string(m.Payload) != `{}` {
				t.Errorf("event %d: got id %q payload %q, want %q and {}", i, m.ID, m.Payload, fmt.Sprint(i))
			}
			if m.Headers != nil {
				m.Headers["added"] = "by the reader"
			}
		}
	}
}

func TestMemoryPositionsAreContiguousAcrossStreams(t *testing.T) {
	s := eventstore.NewMemory()
	defer func() { _ = s.Close() }()
	var want uint64
	for i := range 10 {
		stream := fmt.Sprintf("s%d", i%3)
		res, err := s.Append(t.Context(), stream, eventstore.Any, []engine.Message{{ID: fmt.Sprint(i)}, {ID: fmt.Sprint(i, "b")}})
		if err != nil {
			t.Fatalf("Append: got error %v, want nil", err)
		}
		for _, m := range res.Events {
			want++
			if m.Position != want {
				t.Fatalf("event %q: got position %d, want %d", m.ID, m.Position, want)
			}
		}
	}
}

// Events cross the memory store's chunk (1024 records) and byte block
// (256 KiB) boundaries, and some payloads are larger than a block.
func TestMemoryReadsBackEventsAcrossChunksAndBlocks(t *testing.T) {
	s := eventstore.NewMemory()
	defer func() { _ = s.Close() }()
	const n = 2500
	payload := func(i int) []byte {
		size := 100
		if i%500 == 7 {
			size = 300 << 10
		}
		return bytes.Repeat([]byte{byte(i)}, size)
	}
	for i := 0; i < n; i += 50 {
		batch := make([]engine.Message, 50)
		for j := range batch {
			batch[j] = engine.Message{ID: fmt.Sprint(i + j), Payload: payload(i + j), CorrelationID: strings.Repeat("c", (i+j)%40)}
		}
		if _, err := s.Append(t.Context(), "big", eventstore.Any, batch); err != nil {
			t.Fatalf("Append at %d: got error %v, want nil", i, err)
		}
	}
	var after uint64
	for after < n {
		got, err := s.Read(t.Context(), "big", after, 0)
		if err != nil {
			t.Fatalf("Read after %d: got error %v, want nil", after, err)
		}
		for _, m := range got {
			i := int(m.Sequence - 1)
			if m.ID != fmt.Sprint(i) || !bytes.Equal(m.Payload, payload(i)) || m.CorrelationID != strings.Repeat("c", i%40) {
				t.Fatalf("sequence %d: got id %q, %d payload bytes, correlation %q; want %q, %d, %q",
					m.Sequence, m.ID, len(m.Payload), m.CorrelationID, fmt.Sprint(i), len(payload(i)), strings.Repeat("c", i%40))
			}
		}
		after += uint64(len(got))
	}
}

func TestMemoryReadWithoutALimitReturnsDefaultReadLimitEvents(t *testing.T) {
	s := eventstore.NewMemory()
	defer func() { _ = s.Close() }()
	batch := make([]engine.Message, eventstore.DefaultReadLimit+10)
	for i := range batch {
		batch[i] = engine.Message{ID: fmt.Sprint(i)}
	}
	if _, err := s.Append(t.Context(), "orders", eventstore.Any, batch); err != nil {
		t.Fatalf("Append: got error %v, want nil", err)
	}
	got, err := s.Read(t.Context(), "orders", 0, 0)
	if err != nil || len(got) != eventstore.DefaultReadLimit {
		t.Fatalf("Read with limit 0: got %d events, error %v; want %d, nil", len(got), err, eventstore.DefaultReadLimit)
	}
}

// The memory store must hold a realistic million events in under 400 MB of
// heap. This measures memory, not time.
func TestMemoryStoreHoldsOneMillionEventsUnder400MB(t *testing.T) {
	if testing.Short() {
		t.Skip("appends a million events")
	}
	const (
		total    = 1_000_000
		batch    = 1000
		maxBytes = 400 << 20
	)
	names := []string{"ItemCreated", "ItemUpdated", "ItemDeleted"}
	payload := bytes.Repeat([]byte("x"), 100)

	before := liveHeap()
	s := eventstore.NewMemory()
	events := make([]engine.Message, batch)
	for i := 0; i < total; i += batch {
		for j := range events {
			events[j] = engine.Message{
				ID:            uuid.NewString(),
				Name:          names[(i+j)%len(names)],
				ContentType:   "application/json",
				CorrelationID: uuid.NewString(),
				// A fresh payload per event, as ingest would hand over.
				Payload: append([]byte(nil), payload...),
			}
		}
		if _, err := s.Append(t.Context(), "items", eventstore.Any, events); err != nil {
			t.Fatalf("Append at %d: got error %v, want nil", i, err)
		}
	}
	clear(events)
	used := liveHeap() - before
	runtime.KeepAlive(s)

	t.Logf("%d events hold %.1f MB of heap, %d bytes per event", total, float64(used)/(1<<20), used/total)
	if used >= maxBytes {
		t.Errorf("heap for %d events: got %d MB, want under %d MB", total, used>>20, maxBytes>>20)
	}
	if v, err := s.Version(t.Context(), "items"); err != nil || v != total {
		t.Errorf("Version: got %d, %v; want %d, nil", v, err, total)
	}
}

// Compaction gives the heap of compacted events back: records, bytes, IDs
// and headers, not only what Read shows.
func TestMemoryCompactionGivesTheHeapOfCompactedEventsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 200k events")
	}
	const (
		total = 200_000
		batch = 1000
		keep  = 1000
	)
	before := liveHeap()
	s := eventstore.NewMemory()
	defer func() { _ = s.Close() }()
	events := make([]engine.Message, batch)
	for i := 0; i < total; i += batch {
		for j := range events {
			events[j] = engine.Message{
				ID: uuid.NewString(), Name: "ItemCreated", CorrelationID: uuid.NewString(),
				Payload: bytes.Repeat([]byte("x"), 100), Headers: map[string]string{"ce-source": "/items"},
			}
		}
		if _, err := s.Append(t.Context(), "items", eventstore.Any, events); err != nil {
			t.Fatalf("Append at %d: got error %v, want nil", i, err)
		}
	}
	clear(events)
	full := liveHeap() - before
	removed, err := s.Compact(t.Context(), "items", total-keep+1)
	if err != nil || removed != total-keep {
		t.Fatalf("Compact: got %d, %v; want %d, nil", removed, err, total-keep)
	}
	left := liveHeap() - before
	runtime.KeepAlive(s)

	t.Logf("%d events held %.1f MB; the last %d after compaction hold %.1f MB", total, float64(full)/(1<<20), keep, float64(left)/(1<<20))
	if left > full/20 {
		t.Errorf("heap after compacting all but %d of %d events: got %d KB of %d KB, want at most 5%%", keep, total, left>>10, full>>10)
	}
	if first, err := s.First(t.Context(), "items"); err != nil || first != total-keep+1 {
		t.Errorf("First: got %d, %v; want %d, nil", first, err, total-keep+1)
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
