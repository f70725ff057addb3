package boltstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/fsync"
)

// ErrDataFileExists is returned by Restore into a directory that already
// holds a data file: a restore never overwrites data.
var ErrDataFileExists = errors.New("the data directory already holds a data file")

// Snapshot writes a consistent copy of the whole data file to w, taken in
// one read transaction, so writers carry on while it streams. size is the
// snapshot's length, known before the first byte (for Content-Length);
// write is called once.
func (db *DB) Snapshot(write func(size int64, w func(io.Writer) (int64, error)) error) error {
	return db.View(func(tx *bolt.Tx) error {
		return write(tx.Size(), tx.WriteTo)
	})
}

// Restore makes the snapshot file the data file of dir. It refuses when
// dir already holds one (ErrDataFileExists) and checks that the snapshot
// opens as a data file of this layout before it takes its place, so a
// failed restore leaves dir as it was.
func Restore(dir, snapshot string) error {
	target := filepath.Join(dir, FileName)
	if _, err := os.Stat(target); err == nil {
		return fmt.Errorf("restore %s into %s: %w; move it away first", snapshot, target, ErrDataFileExists)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create data directory %s: %w", dir, err)
	}
	tmp := target + ".restoring"
	if err := copyFileSynced(snapshot, tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore %s: %w", snapshot, err)
	}
	if err := checkSnapshot(tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore %s: not a usable snapshot: %w", snapshot, err)
	}
	if err := os.Rename(tmp, target); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore %s: %w", snapshot, err)
	}
	return fsync.Dir(dir)
}

// copyFileSynced copies src to a new file dst and fsyncs it.
func copyFileSynced(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// checkSnapshot opens path read-only and checks its layout version and its
// pages (tx.Check walks the whole tree: a restore is rare, so worth it).
func checkSnapshot(path string) error {
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer func() { _ = b.Close() }()
	return b.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("no %s bucket: %w", bucketMeta, codec.ErrCorrupt)
		}
		if v := meta.Get(keyLayout); !readableLayout(v) {
			return fmt.Errorf("data layout %v, want %d or %d: %w", v, layoutVersionNoKeys, layoutVersion, codec.ErrCorrupt)
		}
		// Drain the channel: Check's goroutine reads pages until it closes it.
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
		}
		return first
	})
}
