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

// ownedStore is an event store that closes its DB with itself, so that the
// suite can open the file again.
type ownedStore struct {
	*EventStore
	db *DB
}

func (s ownedStore) Close() error { return errors.Join(s.EventStore.Close(), s.db.Close()) }

func TestEventStoreConformance(t *testing.T) {
	eventstoretest.Run(t, eventstoretest.Features{Compaction: true, Durable: true, GlobalPosition: true},
		func(t *testing.T, dir string) eventstore.Store {
			db, err := Open(dir, Options{})
			if err != nil {
				t.Fatalf("Open(%s): got error %v, want nil", dir, err)
			}
			return ownedStore{NewEventStore(db), db}
		})
}

// A large compaction is several commits of at most compactBatch events.
func TestEventStoreCompactsInBoundedTransactions(t *testing.T) {
	const total = 2*compactBatch + 1500
	db := openTestDB(t, t.TempDir())
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
	got := esMustRead(t, s, "orders")
	if len(got) != 10 || got[0].Sequence != total-9 || got[0].ID != fmt.Sprint(total-10) {
		t.Fatalf("Read after compaction: got %d events from sequence %d, want 10 from %d", len(got), got[0].Sequence, total-9)
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
