package boltstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
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
