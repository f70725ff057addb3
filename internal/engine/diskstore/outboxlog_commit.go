package diskstore

import (
	"fmt"
	"os"
	"slices"
	"sort"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

// maxGroupBuffer is the largest group buffer kept for the next group; a
// larger one, grown by a burst of big batches, is dropped after use.
const maxGroupBuffer = 4 << 20

// How the log commits. Enqueue and MarkDispatched append their frame to
// the group being gathered (enqueues take their positions there, so the
// log's order is the positions' order) and wait for that group. One syncer
// goroutine takes the whole group, writes it with one write, runs one
// fdatasync, applies it to the index and wakes its callers by closing one
// channel. While it syncs, the next group gathers, so the next fdatasync
// starts the moment the last one ends and covers everyone who came in the
// meantime: there is no timer, and a lone caller is written at once.
//
// Callers append to a buffer instead of handing requests to a writer
// goroutine: on two cores, every hop between goroutines is a wait in a run
// queue behind HTTP handlers, and those waits, not the disk, were what
// bounded durable ingest over HTTP.

// logGroup is the frames gathered for one write and who waits for it.
type logGroup struct {
	start  uint64 // the next position when the group began: <= all of its own
	frames []byte
	items  []groupItem
	done   chan struct{} // closed once written, synced and applied
	err    error         // set before done is closed
}

// groupItem is what the index learns from a frame once it is on disk.
type groupItem struct {
	first     uint64           // an enqueue's first position
	msgs      []engine.Message // an enqueue's messages
	positions []uint64         // a mark's positions
}

// newLogGroup starts a group at position start on the buffers of a group
// already answered (or nil ones).
func newLogGroup(start uint64, frames []byte, items []groupItem) *logGroup {
	return &logGroup{start: start, frames: frames, items: items, done: make(chan struct{})}
}

// add puts frame into the group being gathered and waits until it is on
// disk. An enqueue's frame gets its positions here.
func (o *LogOutbox) add(frame []byte, item groupItem) error {
	if o.opts.syncEachWrite {
		// The fsync-per-write baseline of the benchmarks.
		o.serial.Lock()
		defer o.serial.Unlock()
	}
	o.groupMu.Lock()
	select {
	case <-o.closing:
		o.groupMu.Unlock()
		return outbox.ErrClosed
	default:
	}
	if err := o.Failure(); err != nil {
		o.groupMu.Unlock()
		return err
	}
	g := o.group
	if item.msgs != nil {
		item.first = o.next
		setFramePosition(frame, o.next)
		sealFrame(frame)
		o.next += uint64(len(item.msgs))
	}
	g.frames = append(g.frames, frame...)
	g.items = append(g.items, item)
	o.groupMu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
	<-g.done
	return g.err
}

// syncLoop is the syncer; it stops after Close, once the last group is
// answered.
func (o *LogOutbox) syncLoop() {
	defer close(o.done)
	// The buffers of the last group answered, for the next one: two sets
	// alternate instead of every group growing its own from nothing.
	var spareFrames []byte
	var spareItems []groupItem
	for {
		stopping := false
		select {
		case <-o.kick:
		case <-o.closing:
			stopping = true
		}
		o.groupMu.Lock()
		g := o.group
		taken := len(g.items) > 0
		if taken {
			o.group = newLogGroup(o.next, spareFrames, spareItems)
		}
		o.groupMu.Unlock()
		if taken {
			o.commit(g)
			// Its callers read only g.err now.
			spareFrames, spareItems = nil, nil
			if cap(g.frames) <= maxGroupBuffer {
				clear(g.items) // drop the messages
				spareFrames, spareItems = g.frames[:0], g.items[:0]
			}
		}
		if stopping {
			return
		}
	}
}

// commit writes, syncs and applies g, then wakes its callers. After a
// failed write or fdatasync nothing is known of what reached the disk (a
// failed fdatasync may even have dropped earlier pages), so the log takes
// no more writes: a restart reads back what is really there.
func (o *LogOutbox) commit(g *logGroup) {
	err := o.Failure()
	if err == nil {
		err = o.rotateIfFull(len(g.frames), g.start)
	}
	if err == nil {
		if _, err = o.file.WriteAt(g.frames, o.size); err == nil {
			err = fdatasync(o.file)
		}
		o.size += int64(len(g.frames))
	}
	if err != nil {
		g.err = o.fail(err)
	} else {
		o.syncs.Add(1)
		o.apply(g)
	}
	close(g.done)
}

// Failure is the error that stopped the log taking writes, or nil.
func (o *LogOutbox) Failure() error {
	if p := o.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// fail stops the log taking writes for err (the first failure sticks) and
// returns what callers get from then on.
func (o *LogOutbox) fail(err error) error {
	wrapped := fmt.Errorf("%w: %s: %w", errLogBroken, o.dir, err)
	o.broken.CompareAndSwap(nil, &wrapped)
	return o.Failure()
}

// apply adds a synced group's enqueued entries to the index and drops its
// dispatched ones, then deletes the segments that no longer hold anything
// pending.
func (o *LogOutbox) apply(g *logGroup) {
	released := 0
	o.mu.Lock()
	last := o.segments[len(o.segments)-1]
	for _, it := range g.items {
		if it.msgs != nil {
			o.index.add(it.first, it.msgs)
			last.live += len(it.msgs)
			continue
		}
		for _, p := range it.positions {
			if o.index.dispatch(p) {
				o.segmentOf(p).live--
				released++
			}
		}
	}
	o.index.trim()
	doomed := o.dropDispatchedSegmentsLocked()
	o.mu.Unlock()
	o.reserved.Add(-int64(released))
	o.deleteSegments(doomed)
}

// segmentOf returns the segment holding pos, which one does.
func (o *LogOutbox) segmentOf(pos uint64) *segment {
	i := sort.Search(len(o.segments), func(i int) bool { return o.segments[i].first > pos })
	return o.segments[i-1]
}

// dropDispatchedSegmentsLocked removes from the list the oldest segments
// with nothing pending, never the last one, and returns them. Only from the
// front: a later segment may hold the marks of an earlier one's entries,
// and deleting it first would bring those entries back after a restart.
func (o *LogOutbox) dropDispatchedSegmentsLocked() []*segment {
	n := 0
	for n < len(o.segments)-1 && o.segments[n].live == 0 {
		n++
	}
	if n == 0 {
		return nil
	}
	doomed := slices.Clone(o.segments[:n])
	clear(o.segments[:n])
	o.segments = o.segments[n:]
	return doomed
}

// deleteSegments deletes the files, oldest first, making each deletion
// durable before the next (the order matters; see above). A file that
// cannot be deleted is read again at the next start, where every entry in
// it is found dispatched: harmless.
func (o *LogOutbox) deleteSegments(segs []*segment) {
	for _, s := range segs {
		if os.Remove(s.path) != nil || syncDir(o.dir) != nil {
			return
		}
	}
}

// rotateIfFull starts a new segment, named by the group's first
// position, when the group's n bytes would not fit in the last one. Only
// the syncer changes the segment list, so it reads it without the lock. A group
// larger than a whole segment goes into a fresh one, which grows past its
// preallocated size.
func (o *LogOutbox) rotateIfFull(n int, first uint64) error {
	if o.size+int64(n) <= o.opts.segmentSize || o.size == int64(len(segmentMagic)) {
		return nil
	}
	if first == o.segments[len(o.segments)-1].first {
		// No position was taken since the last segment began (it holds
		// marks only): a new one would need its name. Marks are bounded
		// by the entries before them, so the segment cannot grow far.
		return nil
	}
	f, err := createSegment(o.dir, first, o.opts.segmentSize)
	if err != nil {
		return err
	}
	_ = o.file.Close() // every group written to it is synced
	o.file, o.size = f, int64(len(segmentMagic))
	o.mu.Lock()
	o.segments = append(o.segments, &segment{path: f.Name(), first: first})
	o.mu.Unlock()
	return nil
}

// createSegment creates the segment starting at first, filled with zeros
// up to size, and makes it and its name in dir durable before anything is
// written to it. Preallocating with real zeros (not fallocate, whose
// unwritten extents change metadata on first write) means a group's
// fdatasync flushes data only: no journal commit for a changed file size
// or block map, which on ext4 costs more CPU and time than the data.
func createSegment(dir string, first uint64, size int64) (*os.File, error) {
	path := segmentPath(dir, first)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create outbox log segment: %w", err)
	}
	err = writeZeros(f, int64(len(segmentMagic)), size)
	if err == nil {
		_, err = f.WriteAt([]byte(segmentMagic), 0)
	}
	if err == nil {
		err = fdatasync(f)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("create outbox log segment %s: %w", path, err)
	}
	return f, nil
}

// writeZeros writes zeros to f from offset from up to offset to.
func writeZeros(f *os.File, from, to int64) error {
	zeros := make([]byte, min(1<<20, max(to-from, 0)))
	for off := from; off < to; {
		n := min(int64(len(zeros)), to-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}
