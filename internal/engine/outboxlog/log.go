// Package outboxlog is the durable outbox of --storage=disk: an append-only
// log of segment files, with its pending entries indexed in memory.
//
// It is apart from the bbolt file (boltstore) because the outbox is the
// write a client waits for: a bbolt commit is two fsyncs (pages, then the
// meta page) and one writer at a time, where appending to a log is one
// fdatasync. Enqueues and MarkDispatched calls waiting at the same moment
// share a write and an fdatasync (groupcommit); each returns once that
// fdatasync is done, so a 202 survives a crash. Dispatched marks are records
// in the log too, so a restart re-dispatches only what was not marked (and
// the event store's idempotency by event ID covers a crash between the
// store's commit and the mark). A segment is deleted once it and every older
// one are fully dispatched: deleting in order means no mark is lost while
// the entry it marks is still on disk.
//
// The file format is in segment.go and frame.go.
package outboxlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/groupcommit"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

// Log is the outbox log in one directory. It is safe for concurrent use.
type Log struct {
	dir         string
	capacity    int64
	segmentSize int64
	// reserved counts pending entries plus those of Enqueues in flight,
	// taken before the write so concurrent Enqueues cannot together pass
	// the capacity.
	reserved atomic.Int64
	signal   chan struct{}
	closed   atomic.Bool // Close has begun
	once     sync.Once
	broken   atomic.Pointer[error] // a failed write or fdatasync

	commits *groupcommit.Pipeline[record]
	// next is the position the next enqueued entry gets. Only number
	// touches it, under the pipeline's lock: positions follow the log's
	// order.
	next uint64

	mu       sync.Mutex
	index    pendingIndex
	segments []*segment // oldest first; the last one is written to

	// Owned by the committer (commit.go).
	file *os.File // the last segment
	size int64    // where the next group goes: the end of its frames (the file is preallocated past it)
	tail uint64   // the position after the last entry written
	buf  []byte   // a group's frames, laid end to end for one write

	recovered string
}

var _ outbox.Outbox = (*Log)(nil)

// errBroken wraps the failure that stopped the log taking writes.
var errBroken = errors.New("the outbox log stopped taking writes after a failed write; restart the manager")

// HasRoom reports whether n more entries would fit now; Ingest asks it
// before validating, so an overloaded manager refuses cheaply.
func (o *Log) HasRoom(n int) bool {
	return o.reserved.Load()+int64(n) <= o.capacity
}

// reserve claims n slots under the capacity, all or none.
func (o *Log) reserve(n int64) bool {
	for {
		cur := o.reserved.Load()
		if cur+n > o.capacity {
			return false
		}
		if o.reserved.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// Enqueue appends msgs to the log, all or none, and returns once they are
// on disk. It returns outbox.ErrFull when they do not fit.
func (o *Log) Enqueue(ctx context.Context, msgs []engine.Message) error {
	if len(msgs) == 0 {
		if o.closed.Load() {
			return outbox.ErrClosed
		}
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	if !o.reserve(int64(len(msgs))) {
		return outbox.ErrFull
	}
	// Encoded here, in parallel; the committer's lock only numbers it.
	frame := newEnqueueFrame(msgs)
	err := o.commit(ctx, record{frame: *frame, msgs: slices.Clone(msgs)})
	// Written (or failed) either way: the group's write copied the frame.
	putFrameBuffer(frame)
	if err != nil {
		o.reserved.Add(-int64(len(msgs)))
		return err
	}
	select {
	case o.signal <- struct{}{}:
	default:
	}
	return nil
}

// MarkDispatched records positions as dispatched and drops them from the
// pending entries; unknown or already dispatched ones are ignored.
func (o *Log) MarkDispatched(ctx context.Context, positions []uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mark dispatched: %w", err)
	}
	if o.closed.Load() {
		return outbox.ErrClosed
	}
	o.mu.Lock()
	live := make([]uint64, 0, len(positions))
	for _, p := range positions {
		if o.index.pending(p) {
			live = append(live, p)
		}
	}
	o.mu.Unlock()
	if len(live) == 0 {
		return nil
	}
	return o.commit(ctx, record{frame: newDispatchedFrame(live), positions: live})
}

// commit writes rec with the group of the moment and waits for its
// fdatasync.
func (o *Log) commit(ctx context.Context, rec record) error {
	if err := o.Failure(); err != nil {
		return err
	}
	err := o.commits.Commit(ctx, rec)
	if errors.Is(err, groupcommit.ErrClosed) {
		return outbox.ErrClosed
	}
	return err
}

// Pending returns up to limit pending entries, oldest first. The messages
// are shared with the outbox and read-only.
func (o *Log) Pending(ctx context.Context, limit int) ([]outbox.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pending: %w", err)
	}
	if o.closed.Load() {
		return nil, outbox.ErrClosed
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(limit, o.index.live)
	if n <= 0 {
		return nil, nil
	}
	return o.index.appendLive(make([]outbox.Entry, 0, n), 0, n), nil
}

// Scan calls fn with every pending entry, oldest first, as
// outbox.Outbox.Scan says: a page of outbox.ScanPage entries at a time from
// the in-memory index, none of them under the lock. After a restart that is
// every entry the log replayed as not dispatched.
func (o *Log) Scan(ctx context.Context, fn func(outbox.Entry) error) error {
	page := make([]outbox.Entry, 0, outbox.ScanPage)
	var after uint64 // the position of the last entry visited
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if o.closed.Load() {
			return outbox.ErrClosed
		}
		o.mu.Lock()
		page = o.index.appendLive(page[:0], after, cap(page))
		o.mu.Unlock()
		if len(page) == 0 {
			return nil
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		after = page[len(page)-1].Position
		clear(page) // let dispatched messages go while the next page is read
	}
}

// PendingInto is Pending into the caller's buffers (see outbox.Memory).
func (o *Log) PendingInto(ctx context.Context, msgs []engine.Message, positions []uint64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("pending: %w", err)
	}
	if o.closed.Load() {
		return 0, outbox.ErrClosed
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.index.copyLive(msgs, positions), nil
}

// Len returns the number of entries not yet dispatched.
func (o *Log) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.index.live
}

// Signal receives a value after an Enqueue.
func (o *Log) Signal() <-chan struct{} { return o.signal }

// Syncs returns how many fdatasyncs the committer has done: with the
// number of enqueues, it tells how many share one.
func (o *Log) Syncs() uint64 { return o.commits.Commits() }

// Recovered describes what opening the log found at the end of its last
// segment and dropped: the part of a write the crash interrupted, which no
// caller was told had succeeded. Empty when the log ended cleanly.
func (o *Log) Recovered() string { return o.recovered }

// Dir is the directory of the log's segments.
func (o *Log) Dir() string { return o.dir }

// Failure is the error that stopped the log taking writes, or nil.
func (o *Log) Failure() error {
	if p := o.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// fail stops the log taking writes for err (the first failure sticks) and
// returns what callers get from then on. After a failed write or
// fdatasync nothing is known of what reached the disk (a failed fdatasync
// may even have dropped earlier pages): a restart reads back what is
// really there.
func (o *Log) fail(err error) error {
	wrapped := fmt.Errorf("%w: %s: %w", errBroken, o.dir, err)
	o.broken.CompareAndSwap(nil, &wrapped)
	return o.Failure()
}

// Close commits the writes in flight, stops the committer and closes the
// segment. Later calls return outbox.ErrClosed; closing twice is harmless.
func (o *Log) Close() error {
	var err error
	o.once.Do(func() {
		o.closed.Store(true)
		o.commits.Close()
		err = o.file.Close()
		o.mu.Lock()
		o.index = pendingIndex{}
		o.mu.Unlock()
	})
	return err
}
