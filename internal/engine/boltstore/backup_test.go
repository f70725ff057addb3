package boltstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// snapshotTo writes db's snapshot to a file in a new directory.
func snapshotTo(t *testing.T, db *DB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "snapshot.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	err = db.Snapshot(func(size int64, write func(io.Writer) (int64, error)) error {
		n, err := write(f)
		if err == nil && n != size {
			err = fmt.Errorf("wrote %d bytes, announced %d", n, size)
		}
		return err
	})
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return path
}

func TestASnapshotTakenDuringAppendsRestoresToAConsistentStore(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	store := NewEventStore(db)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ev := engine.Message{ID: fmt.Sprintf("w%d-%d", w, i), Stream: "s", Payload: []byte(`{}`)}
				if _, err := store.Append(ctx, "s", eventstore.Any, []engine.Message{ev}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// Let the writers get going; Snapshot runs while they still write.
	enginetest.Eventually(t, "the writers to append 200 events", func() bool { return versionOf(t, store) >= 200 })
	snapshot := snapshotTo(t, db)
	close(stop)
	wg.Wait()

	dir := t.TempDir()
	if err := Restore(dir, snapshot); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	restored := NewEventStore(openTestDB(t, dir))
	v, err := restored.Version(ctx, "s")
	if err != nil || v < 200 {
		t.Fatalf("restored version %d (%v), want at least the 200 appended before the snapshot", v, err)
	}
	events, err := restored.Read(ctx, "s", 0, int(v))
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range events {
		if ev.Sequence != uint64(i+1) {
			t.Fatalf("restored event %d has sequence %d: the snapshot is not one consistent state", i, ev.Sequence)
		}
	}
}

func versionOf(t *testing.T, s *EventStore) uint64 {
	t.Helper()
	v, err := s.Version(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRestoreNeverOverwritesADataFile(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	snapshot := snapshotTo(t, db)
	dir := t.TempDir()
	existing := filepath.Join(dir, FileName)
	if err := os.WriteFile(existing, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Restore(dir, snapshot); !errors.Is(err, ErrDataFileExists) {
		t.Fatalf("Restore over a data file: got %v, want ErrDataFileExists", err)
	}
	if data, _ := os.ReadFile(existing); string(data) != "precious" {
		t.Fatal("Restore changed the existing data file")
	}
}

func TestRestoreOfAFileThatIsNotASnapshotLeavesTheDirectoryEmpty(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(bad, []byte(strings.Repeat("x", 8192)), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Restore(dir, bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Restore of garbage: got %v, want an error naming %s", err, bad)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a failed restore left %v behind", entries)
	}
}
