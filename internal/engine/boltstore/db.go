package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/groupcommit"
)

// FileName is the data file inside the data directory.
const FileName = "eventsourcing.db"

// ErrClosed is returned by Update and View after Close.
var ErrClosed = errors.New("disk store closed")

// maxGroupWrites bounds one transaction's writers, so a flood cannot build
// an unbounded write set; the rest share the next commit.
const maxGroupWrites = 4096

// DB is the data file with its group committer.
type DB struct {
	bolt    *bolt.DB
	path    string
	commits *groupcommit.Pipeline[func(*bolt.Tx) error]
	closed  atomic.Bool // Close has begun
	once    sync.Once
}

// Options configure a DB; the zero value is the product's.
type Options struct {
	// SyncEachWrite gives every Update a transaction of its own: the
	// baseline the benchmarks compare group commit with.
	SyncEachWrite bool
	// ObserveCommit, when set, is told of each transaction group committed
	// (groupcommit.Options.Observe); bbolt's commit syncs itself, so its
	// sync is reported as zero.
	ObserveCommit func(writes int, write, sync time.Duration)
}

// initialMmapSize is how much of the data file bbolt maps at open.
const initialMmapSize = 1 << 30

// Open opens (creating when missing) the data file in dir. A file that is
// not a valid store, or one another process holds, is an error naming the
// file: never a silent reset.
func Open(dir string, opts Options) (*DB, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 2 * time.Second, // another manager holds the file lock
		// The freelist is rebuilt on open instead of written on every
		// commit: fewer pages per fsync.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Address space, not memory: while the file fits in it, bbolt never
		// remaps, and a remap waits for every read transaction and holds
		// back every new one (reads and commits pause while the file
		// grows). etcd maps 10 GiB up front for the same reason.
		InitialMmapSize: initialMmapSize,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: another process holds it (is a second manager running on this volume?): %w", path, err)
		}
		return nil, fmt.Errorf("open %s: the file is damaged or not an eventsourcing data file "+
			"(restore it from a backup, or move it away to start empty): %w", path, err)
	}
	db := &DB{bolt: b, path: path}
	if err := db.checkLayout(); err != nil {
		_ = b.Close()
		return nil, err
	}
	pipe := groupcommit.Options{MaxWrites: maxGroupWrites, Yield: true, Observe: opts.ObserveCommit}
	if opts.SyncEachWrite {
		pipe.MaxWrites = 1
	}
	db.commits = groupcommit.New(groupcommit.Env[func(*bolt.Tx) error]{Write: db.write}, pipe)
	return db, nil
}

// Commits returns how many transactions the group committer has run: with
// the number of writes, it tells how many writers share a commit.
func (db *DB) Commits() uint64 { return db.commits.Commits() }

// Path is the data file's path.
func (db *DB) Path() string { return db.path }

// layoutVersion is stored in the meta bucket; a file written by a later,
// incompatible version is refused rather than misread. Layout 2 added keyed
// events (the codec's layout 2 and a stream's keys and bykey buckets);
// a layout-1 file holds none, so it is a layout-2 file as it is and opening
// it just records the new number.
const (
	layoutVersion       = 2
	layoutVersionNoKeys = 1
)

// readableLayout reports whether this manager reads a file whose meta
// bucket holds layout v.
func readableLayout(v []byte) bool {
	return len(v) == 1 && (v[0] == layoutVersion || v[0] == layoutVersionNoKeys)
}

var (
	bucketMeta       = []byte("meta")
	bucketStreams    = []byte("streams")
	bucketReadModels = []byte("readmodels")
	keyLayout        = []byte("layout")
)

// checkLayout creates the top-level buckets of a new file and checks the
// layout version of an existing one.
func (db *DB) checkLayout() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketStreams, bucketReadModels} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("open %s: create bucket %s: %w", db.path, name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keyLayout)
		switch {
		case v == nil, readableLayout(v) && v[0] != layoutVersion:
			return meta.Put(keyLayout, []byte{layoutVersion})
		case !readableLayout(v):
			return fmt.Errorf("open %s: data layout %v, this manager reads layouts %d and %d: %w",
				db.path, v, layoutVersionNoKeys, layoutVersion, codec.ErrCorrupt)
		}
		return nil
	})
}

// Update runs fn in a read-write transaction shared with the other writers
// waiting at the same moment, and returns once that transaction is on disk.
// When fn returns an error nothing it wrote is kept: the group is rolled
// back and run again without it, so fn may run more than once and must
// set any result it reports on every run. If the commit fails, every
// writer of the group gets its error and nothing of the group is stored.
//
// ctx bounds the wait for room in the next transaction only: once fn has
// joined one, Update waits for the commit, so a caller never walks away
// from a write that may still happen.
func (db *DB) Update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	err := db.commits.Commit(ctx, fn)
	if errors.Is(err, groupcommit.ErrClosed) {
		return ErrClosed
	}
	return err
}

// UpdateWithNext is Update for a write that need not be durable at once:
// fn joins the transaction the next Update brings about instead of
// costing a commit of its own, or one of its own once within has passed
// or hurry receives (groupcommit.Pipeline.CommitWithNext).
func (db *DB) UpdateWithNext(ctx context.Context, fn func(tx *bolt.Tx) error, within time.Duration, hurry <-chan struct{}) error {
	err := db.commits.CommitWithNext(ctx, fn, within, hurry)
	if errors.Is(err, groupcommit.ErrClosed) {
		return ErrClosed
	}
	return err
}

// View runs fn in a read-only transaction, concurrently with writers.
func (db *DB) View(fn func(tx *bolt.Tx) error) error {
	if db.closed.Load() {
		return ErrClosed
	}
	return db.bolt.View(fn)
}

// Close commits the writes that joined a transaction, stops the committer
// and closes the file. Closing again is harmless.
func (db *DB) Close() error {
	var err error
	db.once.Do(func() {
		db.closed.Store(true)
		db.commits.Close()
		err = db.bolt.Close()
	})
	return err
}

// errRetryGroup rolls back a group's transaction in which a writer failed.
var errRetryGroup = errors.New("a writer failed: run the group again without it")

// write runs the group's functions in one transaction, whose commit syncs
// it. A function's error goes to its writer alone: the transaction is
// rolled back, since the function may have written part of its work, and
// run again without it (rare: writers check before they write). A failed
// commit goes to all.
func (db *DB) write(g *groupcommit.Group[func(*bolt.Tx) error]) error {
	for {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for i, fn := range g.Writes() {
				if g.Failed(i) {
					continue
				}
				if err := fn(tx); err != nil {
					g.Fail(i, err)
					return errRetryGroup
				}
			}
			return nil
		})
		switch {
		case errors.Is(err, errRetryGroup):
			continue
		case err != nil:
			return fmt.Errorf("commit to %s: %w", db.path, err)
		}
		return nil
	}
}
