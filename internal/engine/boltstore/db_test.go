package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

func TestAFailingWriterDoesNotFailTheOthersInItsCommit(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	refused := errors.New("refused")
	var wg sync.WaitGroup
	errs := make([]error, 32)
	for i := range errs {
		wg.Go(func() {
			errs[i] = db.Update(context.Background(), func(tx *bolt.Tx) error {
				// Odd writers write, then fail: what they wrote must go.
				if err := tx.Bucket(bucketMeta).Put([]byte{'w', byte(i)}, []byte{1}); err != nil {
					return err
				}
				if i%2 == 1 {
					return refused
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if want := i%2 == 1; errors.Is(err, refused) != want || (!want && err != nil) {
			t.Errorf("writer %d: got %v, want refused=%v", i, err, want)
		}
		var got []byte
		_ = db.View(func(tx *bolt.Tx) error {
			got = tx.Bucket(bucketMeta).Get([]byte{'w', byte(i)})
			return nil
		})
		if (got != nil) == (i%2 == 1) {
			t.Errorf("writer %d: stored=%v, want %v", i, got != nil, i%2 == 0)
		}
	}
}

// When a writer of a group fails, DB.Update rolls the transaction back and
// runs the others again in a new one: a read-model batch and an append that
// ran in the rolled-back transaction must store their work once.
func TestWritersRunAgainAfterARollbackStoreTheirWorkOnce(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	rm := NewReadModels(db)
	t.Cleanup(func() { _ = rm.Close() })
	es := NewEventStore(db)
	t.Cleanup(func() { _ = es.Close() })
	// A list and a stream that exist already: the writers go on from their ends.
	if err := rm.Apply(t.Context(), "ns/p", []readmodel.Change{{Key: "items", Op: readmodel.OpAppend, Value: "a"}},
		readmodel.Checkpoint{"s": 1}); err != nil {
		t.Fatal(err)
	}
	esMustAppend(t, es, "s", eventstore.Any, esEvent("e1"))
	// Apply stages its write behind; the raw transactions below must see it
	// committed, or the staged "a" lands after "b" and "c".
	if err := rm.wb.barrier(t.Context()); err != nil {
		t.Fatal(err)
	}

	batch := make([]*applyTx, 0, 2)
	for i, v := range []string{"b", "c"} {
		a, err := rm.newApplyTx("ns/p", []readmodel.Change{{Key: "items", Op: readmodel.OpAppend, Value: v}},
			readmodel.Checkpoint{"s": uint64(i + 2)})
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, a)
	}
	app := newAppendTx("s", eventstore.Any, []engine.Message{esEvent("e2"), esEvent("e3")})
	defer app.release()
	writers := func(tx *bolt.Tx) error {
		if err := writeBatch(tx, batch); err != nil {
			return err
		}
		return app.run(tx)
	}
	othersFailed := errors.New("another writer of the group failed")
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if err := writers(tx); err != nil {
			return err
		}
		return othersFailed
	})
	if !errors.Is(err, othersFailed) {
		t.Fatalf("first run: got error %v, want %v", err, othersFailed)
	}
	if err := db.bolt.Update(writers); err != nil {
		t.Fatalf("second run: got error %v, want nil", err)
	}

	doc, err := rm.Document(t.Context(), "ns/p")
	if got, want := string(doc), `{"items":["a","b","c"]}`; err != nil || got != want {
		t.Errorf("document: got %s (error %v), want %s", got, err, want)
	}
	if cp, err := rm.Checkpoint(t.Context(), "ns/p"); err != nil || cp["s"] != 3 {
		t.Errorf("checkpoint: got %v (error %v), want s at 3", cp, err)
	}
	if app.res.Appended != 2 || app.res.LastSequence != 3 {
		t.Errorf("append result: got %d appended up to sequence %d, want 2 up to 3", app.res.Appended, app.res.LastSequence)
	}
	for i, m := range esMustRead(t, es, "s") {
		if want := fmt.Sprintf("e%d", i+1); m.ID != want || m.Sequence != uint64(i+1) || m.Position != uint64(i+1) {
			t.Errorf("stored event %d: got id %q sequence %d position %d, want %q at %d", i, m.ID, m.Sequence, m.Position, want, i+1)
		}
	}
}

func TestADamagedDataFileIsAStartupErrorNamingTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, Options{})
	if err == nil {
		_ = db.Close()
		t.Fatal("Open of a damaged file succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the file %s", err, path)
	}
	if data, _ := os.ReadFile(path); !strings.HasPrefix(string(data), "not a bbolt file") {
		t.Fatal("Open rewrote the damaged file")
	}
}

func TestASecondOpenOfTheSameFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	openTestDB(t, dir)
	db, err := Open(dir, Options{})
	if err == nil {
		_ = db.Close()
		t.Fatal("a second Open of a file in use succeeded")
	}
	if !strings.Contains(err.Error(), "another process") {
		t.Fatalf("error %q does not say another process holds the file", err)
	}
}

func TestUpdateAfterCloseIsErrClosed(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if err := db.Update(context.Background(), func(*bolt.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close: got %v, want ErrClosed", err)
	}
}

// setLayout overwrites the layout number of the data file in dir.
func setLayout(t *testing.T, dir string, layout byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyLayout, []byte{layout}) }); err != nil {
		t.Fatal(err)
	}
}

// A file of layout 1 (before keys) holds no keyed event: it opens as it is
// and is marked layout 2, which a manager that reads layout 1 only refuses.
func TestAFileOfTheLayoutBeforeKeysOpensAndIsMarkedTheCurrentOne(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	setLayout(t, dir, layoutVersionNoKeys)

	db = openTestDB(t, dir)
	var got []byte
	_ = db.View(func(tx *bolt.Tx) error {
		got = bytes.Clone(tx.Bucket(bucketMeta).Get(keyLayout))
		return nil
	})
	if !bytes.Equal(got, []byte{layoutVersion}) {
		t.Fatalf("layout after opening a layout-1 file: got %v, want [%d]", got, layoutVersion)
	}
}

func TestAFileOfALaterLayoutIsRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	setLayout(t, dir, layoutVersion+1)
	if db, err := Open(dir, Options{}); err == nil {
		_ = db.Close()
		t.Fatal("Open of a file of a later layout succeeded")
	}
}
