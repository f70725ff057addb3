package diskstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	berrors "go.etcd.io/bbolt/errors"
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
	bolt *bolt.DB
	path string

	// reqs is unbuffered: a send completes only once the committer has
	// taken the request, so none is stranded when the committer stops, and
	// "everyone waiting now" is exactly the senders blocked on it.
	reqs    chan *writeReq
	closing chan struct{}
	done    chan struct{}
	once    sync.Once

	commits atomic.Uint64 // transactions the committer ran
	// groupLimit bounds the writers of one transaction: maxGroupWrites,
	// or 1 in the benchmark that measures a commit per write.
	groupLimit int
}

// writeReq is one writer's function and where it waits for the outcome.
type writeReq struct {
	fn     func(tx *bolt.Tx) error
	result chan error // buffered 1: the committer never blocks on a writer
}

// Open opens (creating when missing) the data file in dir. A file that is
// not a valid store, or one another process holds, is an error naming the
// file: never a silent reset.
func Open(dir string) (*DB, error) {
	return open(dir, maxGroupWrites)
}

// open is Open with the bound on writers per transaction.
func open(dir string, groupLimit int) (*DB, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 2 * time.Second, // another manager holds the file lock
		// The freelist is rebuilt on open instead of written on every
		// commit: fewer pages per fsync on the ingest path.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: another process holds it (is a second manager running on this volume?): %w", path, err)
		}
		return nil, fmt.Errorf("open %s: the file is damaged or not an eventsourcing data file "+
			"(restore it from a backup, or move it away to start empty): %w", path, err)
	}
	db := &DB{
		bolt: b, path: path, reqs: make(chan *writeReq), closing: make(chan struct{}), done: make(chan struct{}),
		groupLimit: groupLimit,
	}
	if err := db.checkLayout(); err != nil {
		_ = b.Close()
		return nil, err
	}
	go db.commitLoop()
	return db, nil
}

// Commits returns how many transactions the group committer has run: with
// the number of writes, it tells how many writers share a commit.
func (db *DB) Commits() uint64 { return db.commits.Load() }

// Path is the data file's path.
func (db *DB) Path() string { return db.path }

// layoutVersion is stored in the meta bucket; a file written by a later,
// incompatible version is refused rather than misread.
const layoutVersion = 1

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
		case v == nil:
			return meta.Put(keyLayout, []byte{layoutVersion})
		case len(v) != 1 || v[0] != layoutVersion:
			return fmt.Errorf("open %s: data layout %v, this manager reads layout %d: %w", db.path, v, layoutVersion, codec.ErrCorrupt)
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
// ctx bounds the wait for the committer only: once it has taken fn, Update
// waits for the commit, so a caller never walks away from a write that may
// still happen.
func (db *DB) Update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	r := &writeReq{fn: fn, result: make(chan error, 1)}
	select {
	case db.reqs <- r:
	case <-db.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.result
}

// View runs fn in a read-only transaction, concurrently with writers.
func (db *DB) View(fn func(tx *bolt.Tx) error) error {
	select {
	case <-db.closing:
		return ErrClosed
	default:
	}
	return db.bolt.View(fn)
}

// Close stops the committer after the commit in flight and closes the file.
func (db *DB) Close() error {
	var err error
	db.once.Do(func() {
		close(db.closing)
		<-db.done
		err = db.bolt.Close()
	})
	return err
}

// commitLoop is the group committer: wait for the first writer, gather
// everyone else waiting, commit them in one transaction, answer, repeat.
// There is no timer: a lone writer commits at once; writers that arrive
// during a commit share the next one.
func (db *DB) commitLoop() {
	defer close(db.done)
	var group []*writeReq
	for {
		group = group[:0]
		select {
		case r := <-db.reqs:
			group = append(group, r)
		case <-db.closing:
			return
		}
		group = gatherGroup(group, db.reqs, db.groupLimit)
		db.commit(group)
		for i := range group {
			group[i] = nil
		}
	}
}

// errRetryGroup rolls back a group's transaction in which a writer failed.
var errRetryGroup = errors.New("a writer failed: run the group again without it")

// commit runs the group's functions in one transaction. A function's error
// goes to its writer alone: the transaction is rolled back, since the
// function may have written part of its work, and run again without it
// (rare: writers check before they write). A failed commit goes to all.
func (db *DB) commit(group []*writeReq) {
	errs := make([]error, len(group))
	for {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for i, r := range group {
				if errs[i] != nil {
					continue
				}
				if errs[i] = r.fn(tx); errs[i] != nil {
					return errRetryGroup
				}
			}
			return nil
		})
		if errors.Is(err, errRetryGroup) {
			continue
		}
		if err == nil {
			db.commits.Add(1)
		}
		for i, r := range group {
			switch {
			case errs[i] != nil:
				r.result <- errs[i]
			case err != nil:
				r.result <- fmt.Errorf("commit to %s: %w", db.path, err)
			default:
				r.result <- nil
			}
		}
		return
	}
}

// gatherGroup appends to group, which holds the first request, everyone
// else waiting on reqs, up to limit. The writers the last commit answered
// are runnable but have not queued again yet: committing at once would
// split the crowd into two half-size commits. So it yields, takes whoever
// queued, and repeats while a yield brings someone (hack/storebench
// measured 2x from this). There is no timer: a lone writer goes at once.
func gatherGroup(group []*writeReq, reqs <-chan *writeReq, limit int) []*writeReq {
	for more := true; more && len(group) < limit; {
		runtime.Gosched()
		more = false
	sweep:
		for len(group) < limit {
			select {
			case r := <-reqs:
				group = append(group, r)
				more = true
			default:
				break sweep
			}
		}
	}
	return group
}
