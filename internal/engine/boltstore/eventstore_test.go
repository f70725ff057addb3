package boltstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore/eventstoretest"
)

func TestEventStoreConformance(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		return NewEventStore(openTestDB(t, t.TempDir()))
	})
}

func TestEventStoreCompactionConformance(t *testing.T) {
	eventstoretest.RunCompaction(t, func(t *testing.T) eventstore.Store {
		return NewEventStore(openTestDB(t, t.TempDir()))
	})
}

// A large compaction is several commits of at most compactBatch events,
// and what it leaves survives reopening the file.
func TestEventStoreCompactsInBoundedTransactionsThatSurviveReopening(t *testing.T) {
	const total = 2*compactBatch + 1500
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewEventStore(db)
	for i := 0; i < total; i += 1000 {
		batch := make([]engine.Message, min(1000, total-i))
		for j := range batch {
			batch[j] = esEvent(fmt.Sprint(i + j))
		}
		esMustAppend(t, s, "orders", eventstore.Any, batch...)
	}
	commits := db.Commits()
	removed, err := s.Compact(t.Context(), "orders", total-9)
	if err != nil || removed != total-10 {
		t.Fatalf("Compact: got %d, %v; want %d, nil", removed, err, total-10)
	}
	if n := db.Commits() - commits; n < 3 {
		t.Errorf("Compact of %d events took %d commits, want at least 3 of at most %d events", removed, n, compactBatch)
	}
	_ = s.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = NewEventStore(openTestDB(t, dir))
	got := esMustRead(t, s, "orders")
	if len(got) != 10 || got[0].Sequence != total-9 || got[0].ID != fmt.Sprint(total-10) {
		t.Fatalf("Read after reopening: got %d events from sequence %d, want 10 from %d", len(got), got[0].Sequence, total-9)
	}
	if first, err := s.First(t.Context(), "orders"); err != nil || first != total-9 {
		t.Fatalf("First after reopening: got %d, %v; want %d, nil", first, err, total-9)
	}
	res := esMustAppend(t, s, "orders", eventstore.Any, esEvent("0"), esEvent(fmt.Sprint(total-1)))
	if res.Appended != 1 || res.Events[0].Sequence != total+1 || res.Events[1].Sequence != total {
		t.Fatalf("append of a compacted id and a retained one: got %d appended at %d and %d, want 1 at %d and the stored %d",
			res.Appended, res.Events[0].Sequence, res.Events[1].Sequence, total+1, total)
	}
}

// esEvent returns an event with every field the store keeps set from id.
func esEvent(id string) engine.Message {
	return engine.Message{
		ID:            id,
		Name:          "ItemCreated",
		ContentType:   "application/json",
		Headers:       map[string]string{"ce-source": "/items/" + id},
		Payload:       []byte(`{"id":"` + id + `"}`),
		CorrelationID: "corr-" + id,
	}
}

func esMustAppend(
	t *testing.T, s *EventStore, stream string, expected eventstore.ExpectedVersion, events ...engine.Message,
) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(t.Context(), stream, expected, events)
	if err != nil {
		t.Fatalf("Append(%q, %d, %d events): got error %v, want nil", stream, expected, len(events), err)
	}
	return res
}

func esMustRead(t *testing.T, s *EventStore, stream string) []engine.Message {
	t.Helper()
	got, err := s.Read(t.Context(), stream, 0, 0)
	if err != nil {
		t.Fatalf("Read(%q): got error %v, want nil", stream, err)
	}
	return got
}

// esDescribe is everything a stored event carries, for comparison.
func esDescribe(m engine.Message) string {
	return fmt.Sprintf("id=%q name=%q stream=%q seq=%d pos=%d time=%s headers=%v corr=%q caus=%q type=%q payload=%q",
		m.ID, m.Name, m.Stream, m.Sequence, m.Position, m.Time.UTC().Format("2006-01-02T15:04:05.999999999"),
		m.Headers, m.CorrelationID, m.CausationID, m.ContentType, m.Payload)
}

func esCheckSame(t *testing.T, what string, got, want []engine.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events, want %d", what, len(got), len(want))
	}
	for i := range got {
		if g, w := esDescribe(got[i]), esDescribe(want[i]); g != w {
			t.Errorf("%s event %d:\n got %s\nwant %s", what, i, g, w)
		}
	}
}

// esReopen closes s and its DB and opens the file in dir again.
func esReopen(t *testing.T, s *EventStore, db *DB, dir string) *EventStore {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("EventStore.Close: got %v, want nil", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("DB.Close: got %v, want nil", err)
	}
	reopened := NewEventStore(openTestDB(t, dir))
	t.Cleanup(func() { _ = reopened.Close() })
	return reopened
}

func TestEventsSurviveReopeningTheFile(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	s := NewEventStore(db)
	orders := esMustAppend(t, s, "orders", eventstore.NoStream, esEvent("o1"), esEvent("o2"), esEvent("o3")).Events
	payments := esMustAppend(t, s, "payments", eventstore.NoStream, esEvent("p1"), esEvent("p2")).Events
	var lastPosition uint64
	for _, m := range append(orders, payments...) {
		lastPosition = max(lastPosition, m.Position)
	}

	s = esReopen(t, s, db, dir)
	esCheckSame(t, "orders read after reopening", esMustRead(t, s, "orders"), orders)
	esCheckSame(t, "payments read after reopening", esMustRead(t, s, "payments"), payments)
	if v, err := s.Version(t.Context(), "orders"); err != nil || v != 3 {
		t.Errorf("Version(orders) after reopening: got %d, %v, want 3, nil", v, err)
	}
	sub, err := s.Subscribe(t.Context(), "orders", 0)
	if err != nil {
		t.Fatalf("Subscribe after reopening: got error %v, want nil", err)
	}
	defer func() { _ = sub.Close() }()
	caughtUp := make([]engine.Message, 0, len(orders))
	for range orders {
		m, err := sub.Next(t.Context())
		if err != nil {
			t.Fatalf("Next after reopening: got error %v, want an event", err)
		}
		caughtUp = append(caughtUp, m)
	}
	esCheckSame(t, "subscription after reopening", caughtUp, orders)

	next := esMustAppend(t, s, "orders", eventstore.Exactly(3), esEvent("o4")).Events[0]
	if next.Sequence != 4 {
		t.Errorf("sequence of the append after reopening: got %d, want 4", next.Sequence)
	}
	if next.Position <= lastPosition {
		t.Errorf("position of the append after reopening: got %d, want more than %d, the last before", next.Position, lastPosition)
	}
	live, err := sub.Next(t.Context())
	if err != nil {
		t.Fatalf("Next for the live append: got error %v, want an event", err)
	}
	esCheckSame(t, "live event after reopening", []engine.Message{live}, []engine.Message{next})
}

func TestIdempotencyRecordsSurviveReopening(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	s := NewEventStore(db)
	first := esMustAppend(t, s, "orders", eventstore.NoStream, esEvent("a"), esEvent("b")).Events

	s = esReopen(t, s, db, dir)
	// The retry carries the now stale expected version and changed content:
	// it stores nothing and reports what the first append stored.
	changed := esEvent("a")
	changed.Payload = []byte(`"changed"`)
	retry := esMustAppend(t, s, "orders", eventstore.NoStream, changed, esEvent("b"))
	if retry.Appended != 0 || retry.LastSequence != 2 {
		t.Errorf("retry after reopening: got Appended %d LastSequence %d, want 0 2", retry.Appended, retry.LastSequence)
	}
	esCheckSame(t, "retried events", retry.Events, first)

	partly := esMustAppend(t, s, "orders", eventstore.Exactly(2), esEvent("b"), esEvent("c"))
	if partly.Appended != 1 || partly.LastSequence != 3 || partly.Events[1].Sequence != 3 {
		t.Errorf("partly duplicate append after reopening: got Appended %d LastSequence %d sequence of c %d, want 1 3 3",
			partly.Appended, partly.LastSequence, partly.Events[1].Sequence)
	}
	read := esMustRead(t, s, "orders")
	esCheckSame(t, "stored events", read[:2], first)
	if len(read) != 3 || read[2].ID != "c" {
		t.Errorf("stored events: got %d, the third %q, want 3, the third %q", len(read), read[len(read)-1].ID, "c")
	}
}

func TestConcurrentAppendsShareCommits(t *testing.T) {
	const appenders = 64
	db := openTestDB(t, t.TempDir())
	s := NewEventStore(db)
	t.Cleanup(func() { _ = s.Close() })
	before := db.Commits()

	start := make(chan struct{})
	results := make([]eventstore.AppendResult, appenders)
	errs := make([]error, appenders)
	var wg sync.WaitGroup
	for i := range appenders {
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.Append(t.Context(), "orders", eventstore.Any, []engine.Message{esEvent(fmt.Sprintf("e%d", i))})
		})
	}
	close(start)
	wg.Wait()
	commits := db.Commits() - before

	bySequence := make(map[uint64]string, appenders)
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("appender %d: got error %v, want nil", i, errs[i])
		}
		if res.Appended != 1 || len(res.Events) != 1 {
			t.Fatalf("appender %d: got Appended %d and %d events, want 1 1", i, res.Appended, len(res.Events))
		}
		bySequence[res.Events[0].Sequence] = res.Events[0].ID
	}
	read := esMustRead(t, s, "orders")
	if len(read) != appenders {
		t.Fatalf("stored events: got %d, want %d", len(read), appenders)
	}
	seen := make(map[string]bool, appenders)
	for i, m := range read {
		if want := uint64(i + 1); m.Sequence != want {
			t.Errorf("stored event %d: got sequence %d, want %d", i, m.Sequence, want)
		}
		if seen[m.ID] {
			t.Errorf("event %q: stored twice, want once", m.ID)
		}
		seen[m.ID] = true
		if bySequence[m.Sequence] != m.ID {
			t.Errorf("sequence %d: stored %q, want %q as its Append reported", m.Sequence, m.ID, bySequence[m.Sequence])
		}
	}
	if commits < 1 || commits >= appenders {
		t.Errorf("write transactions for %d appends: got %d, want at least 1 and fewer than %d", appenders, commits, appenders)
	}
	t.Logf("%d appends in %d commits", appenders, commits)
}

// A rejected append shares its transaction with accepted ones: it must leave
// nothing behind, and they must be stored.
func TestRejectedAppendsInACommitWriteNothing(t *testing.T) {
	const pairs = 16
	db := openTestDB(t, t.TempDir())
	s := NewEventStore(db)
	t.Cleanup(func() { _ = s.Close() })
	esMustAppend(t, s, "orders", eventstore.NoStream, esEvent("seed"))

	start := make(chan struct{})
	errs := make([]error, 2*pairs)
	var wg sync.WaitGroup
	for i := range pairs {
		wg.Go(func() {
			<-start
			// Expects a version the stream never has: always a conflict.
			_, errs[2*i] = s.Append(t.Context(), "orders", eventstore.Exactly(1000), []engine.Message{esEvent(fmt.Sprintf("bad%d", i))})
		})
		wg.Go(func() {
			<-start
			_, errs[2*i+1] = s.Append(t.Context(), "orders", eventstore.Any, []engine.Message{esEvent(fmt.Sprintf("good%d", i))})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if bad := i%2 == 0; bad != errors.Is(err, eventstore.ErrWrongExpectedVersion) || (!bad && err != nil) {
			t.Errorf("append %d: got error %v, want a conflict %t", i, err, bad)
		}
	}
	read := esMustRead(t, s, "orders")
	if len(read) != 1+pairs {
		t.Fatalf("stored events: got %d, want %d", len(read), 1+pairs)
	}
	for i, m := range read {
		if strings.HasPrefix(m.ID, "bad") || m.Sequence != uint64(i+1) {
			t.Errorf("stored event %d: got id %q sequence %d, want a good one with sequence %d", i, m.ID, m.Sequence, i+1)
		}
	}
	// Positions come from the counter the rejected appends did not advance.
	if last := read[len(read)-1].Position; last != 1+pairs {
		t.Errorf("last position: got %d, want %d", last, 1+pairs)
	}
}

func TestAppendRejectsKeysBboltCannotStore(t *testing.T) {
	s := NewEventStore(openTestDB(t, t.TempDir()))
	t.Cleanup(func() { _ = s.Close() })
	long := strings.Repeat("x", bolt.MaxKeySize+1)
	for name, call := range map[string]func() error{
		"StreamName": func() error {
			_, err := s.Append(t.Context(), long, eventstore.Any, []engine.Message{esEvent("a")})
			return err
		},
		"EventID": func() error {
			_, err := s.Append(t.Context(), "orders", eventstore.Any, []engine.Message{esEvent("a"), esEvent(long)})
			return err
		},
	} {
		if err := call(); !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("%s of %d bytes: got error %v, want one wrapping ErrInvalidAppend", name, len(long), err)
		}
	}
	if v, err := s.Version(t.Context(), "orders"); err != nil || v != 0 {
		t.Errorf("Version after the rejected appends: got %d, %v, want 0, nil", v, err)
	}
}

func TestEventStoreCallsAfterTheDBClosedReturnErrClosed(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	s := NewEventStore(db)
	t.Cleanup(func() { _ = s.Close() })
	if err := db.Close(); err != nil {
		t.Fatalf("DB.Close: got %v, want nil", err)
	}
	if _, err := s.Append(t.Context(), "orders", eventstore.Any, []engine.Message{esEvent("a")}); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Append: got error %v, want one wrapping eventstore.ErrClosed", err)
	}
	if _, err := s.Read(t.Context(), "orders", 0, 10); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Read: got error %v, want one wrapping eventstore.ErrClosed", err)
	}
}

// BenchmarkEventStoreAppendParallel is the ingest path: 64 goroutines each
// appending single events to one stream, sharing commits; and, to compare,
// with a commit per append.
func BenchmarkEventStoreAppendParallel(b *testing.B) {
	for _, bc := range []struct {
		name          string
		syncEachWrite bool
	}{{"GroupCommit", false}, {"CommitPerAppend", true}} {
		b.Run(bc.name, func(b *testing.B) {
			const appenders = 64
			db, err := Open(b.TempDir(), Options{SyncEachWrite: bc.syncEachWrite})
			if err != nil {
				b.Fatalf("open: got error %v, want nil", err)
			}
			b.Cleanup(func() { _ = db.Close() })
			s := NewEventStore(db)
			b.Cleanup(func() { _ = s.Close() })
			ctx := context.Background()
			var next atomic.Uint64
			b.SetParallelism((appenders + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			commits := db.Commits()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := esEvent(fmt.Sprintf("e%d", next.Add(1)))
					if _, err := s.Append(ctx, "orders", eventstore.Any, []engine.Message{e}); err != nil {
						b.Errorf("Append: got error %v, want nil", err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/float64(max(1, db.Commits()-commits)), "events/commit")
		})
	}
}
