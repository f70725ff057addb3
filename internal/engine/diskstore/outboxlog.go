package diskstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

// LogOutbox is the durable outbox of --storage=disk: an append-only log of
// segment files beside the data file, with its pending entries indexed in
// memory.
//
// It is apart from the bbolt file because the outbox is the write a client
// waits for: a bbolt commit is two fsyncs (pages, then the meta page) and
// one writer at a time, where appending to a log is one fdatasync. Enqueues
// and MarkDispatched calls waiting at the same moment share a write and an
// fdatasync (group commit); each returns once that fdatasync is done, so a
// 202 survives a crash. Dispatched marks are records in the log too, so a
// restart re-dispatches only what was not marked (and the event store's
// idempotency by event ID covers a crash between the store's commit and
// the mark). A segment is deleted once it and every older one are fully
// dispatched: deleting in order means no mark is lost while the entry it
// marks is still on disk.
type LogOutbox struct {
	dir      string
	capacity int64
	opts     logOptions
	// reserved counts pending entries plus those of Enqueues in flight,
	// taken before the write so concurrent Enqueues cannot together pass
	// the capacity.
	reserved atomic.Int64
	signal   chan struct{}

	closing chan struct{} // closed by Close: the syncer drains and stops
	done    chan struct{} // the syncer stopped: every waiter is answered
	once    sync.Once
	syncs   atomic.Uint64
	broken  atomic.Pointer[error] // a failed write or fdatasync

	mu       sync.Mutex
	index    pendingIndex
	segments []*segment // oldest first; the last one is written to

	// The group being gathered for the next write (see outboxlog_commit.go).
	groupMu sync.Mutex
	group   *logGroup
	next    uint64        // position of the next enqueued entry
	kick    chan struct{} // buffered 1: wakes the syncer
	serial  sync.Mutex    // held across a whole write with syncEachWrite

	// Owned by the syncer.
	file *os.File // the last segment
	size int64    // where the next group goes: the end of its frames (the file is preallocated past it)

	recovered string
	torn      int64 // bytes of an unfinished write found at the end on open
}

var _ outbox.Outbox = (*LogOutbox)(nil)

// HasRoom reports whether n more entries would fit now; Ingest asks it
// before validating, so an overloaded manager refuses cheaply.
func (o *LogOutbox) HasRoom(n int) bool {
	return o.reserved.Load()+int64(n) <= o.capacity
}

// reserve claims n slots under the capacity, all or none.
func (o *LogOutbox) reserve(n int64) bool {
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
func (o *LogOutbox) Enqueue(ctx context.Context, msgs []engine.Message) error {
	if len(msgs) == 0 {
		if o.isClosed() {
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
	return o.log(msgs)
}

// log writes msgs, whose slots are reserved, and signals the processor.
func (o *LogOutbox) log(msgs []engine.Message) error {
	// Encoded here, in parallel; only the position is set in the group.
	frame := newEnqueueFrame(msgs)
	if err := o.add(frame, groupItem{msgs: slices.Clone(msgs)}); err != nil {
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
func (o *LogOutbox) MarkDispatched(ctx context.Context, positions []uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mark dispatched: %w", err)
	}
	if o.isClosed() {
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
	return o.add(newDispatchedFrame(live), groupItem{positions: live})
}

// isClosed reports whether Close has begun.
func (o *LogOutbox) isClosed() bool {
	select {
	case <-o.closing:
		return true
	default:
		return false
	}
}

// Pending returns up to limit pending entries, oldest first. The messages
// are shared with the outbox and read-only.
func (o *LogOutbox) Pending(ctx context.Context, limit int) ([]outbox.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pending: %w", err)
	}
	if o.isClosed() {
		return nil, outbox.ErrClosed
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(limit, o.index.live)
	if n <= 0 {
		return nil, nil
	}
	return o.index.appendLive(make([]outbox.Entry, 0, n), n), nil
}

// PendingInto is Pending into the caller's buffers (see outbox.Memory).
func (o *LogOutbox) PendingInto(ctx context.Context, msgs []engine.Message, positions []uint64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("pending: %w", err)
	}
	if o.isClosed() {
		return 0, outbox.ErrClosed
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.index.copyLive(msgs, positions), nil
}

// Len returns the number of entries not yet dispatched.
func (o *LogOutbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.index.live
}

// Signal receives a value after an Enqueue.
func (o *LogOutbox) Signal() <-chan struct{} { return o.signal }

// Syncs returns how many fdatasyncs the committer has done: with the
// number of enqueues, it tells how many share one.
func (o *LogOutbox) Syncs() uint64 { return o.syncs.Load() }

// Recovered describes what opening the log found at the end of its last
// segment and dropped: the part of a write the crash interrupted, which no
// caller was told had succeeded. Empty when the log ended cleanly.
func (o *LogOutbox) Recovered() string { return o.recovered }

// Dir is the directory of the log's segments.
func (o *LogOutbox) Dir() string { return o.dir }

// Close stops the committer after the write in flight and closes the
// segment. Later calls return outbox.ErrClosed; closing twice is harmless.
func (o *LogOutbox) Close() error {
	var err error
	o.once.Do(func() {
		o.groupMu.Lock()
		close(o.closing) // under groupMu: no frame joins a group after it
		o.groupMu.Unlock()
		<-o.done
		err = o.file.Close()
		o.mu.Lock()
		o.index = pendingIndex{}
		o.mu.Unlock()
	})
	return err
}

// errLogBroken wraps the failure that stopped the log taking writes.
var errLogBroken = errors.New("the outbox log stopped taking writes after a failed write; restart the manager")
