package disk

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

func TestASecondOpenOfTheSameDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	second, err := Open(dir, Options{})
	if err == nil {
		_ = second.Close()
		t.Fatal("a second Open of a data directory in use succeeded: two managers would write one outbox log")
	}
	if !strings.Contains(err.Error(), "another process") {
		t.Fatalf("error %q does not say another process holds the directory", err)
	}
}

func TestAnOutboxLogThatDoesNotOpenReleasesTheDataFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, outboxDir), []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := Open(dir, Options{}); err == nil {
		_ = st.Close()
		t.Fatal("Open with a file where the outbox log's directory goes: got nil error, want one")
	}
	if err := os.Remove(filepath.Join(dir, outboxDir)); err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after the failed one: got %v, want nil (the data file must not stay locked)", err)
	}
	_ = st.Close()
}

func TestEachFileReportsItsCommitsToItsOwnObserver(t *testing.T) {
	var mu sync.Mutex
	var data, outboxSyncs []time.Duration
	st, err := Open(t.TempDir(), Options{
		ObserveDataCommit: func(_ int, _, synced time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			data = append(data, synced)
		},
		ObserveOutboxCommit: func(_ int, _, synced time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			outboxSyncs = append(outboxSyncs, synced)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	msg := engine.Message{ID: "e1", Stream: "ns/s", Name: "E", Payload: []byte(`{}`), Time: time.Now()}
	if err := st.Outbox.Enqueue(t.Context(), []engine.Message{msg}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Store.Append(t.Context(), "ns/s", eventstore.Any, []engine.Message{msg}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(outboxSyncs) == 0 || outboxSyncs[0] <= 0 {
		t.Errorf("outbox log commits: got syncs %v, want one with its fdatasync's time", outboxSyncs)
	}
	if len(data) == 0 || data[0] != 0 {
		t.Errorf("data file commits: got syncs %v, want one reported without a sync of its own (bbolt syncs in its commit)", data)
	}
}
