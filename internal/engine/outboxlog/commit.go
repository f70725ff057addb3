package outboxlog

import (
	"os"
	"slices"
	"sort"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/fsync"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/groupcommit"
)

// How the log commits, through a groupcommit.Pipeline: Enqueue and
// MarkDispatched hand their record, encoded in their own goroutine, to the
// group being gathered, and an enqueue takes its positions as it joins, so
// the log's order is the positions' order (number). The committer lays the
// group's frames end to end and writes them with one write (write), runs
// one fdatasync (sync), then adds the group to the index (apply) before
// its callers wake.

// maxGroupBuffer is the largest write buffer kept for the next group; a
// larger one, grown by a burst of big batches, is dropped after use.
const maxGroupBuffer = 4 << 20

// record is one Enqueue's or MarkDispatched's frame on its way to disk, and
// what the index learns from it once it is there.
type record struct {
	frame     []byte
	msgs      []engine.Message // an enqueue's messages
	first     uint64           // an enqueue's first position, given by number
	positions []uint64         // a mark's positions
}

// env is what the pipeline calls.
func (o *Log) env() groupcommit.Env[record] {
	return groupcommit.Env[record]{Join: o.number, Write: o.write, Sync: o.sync, Apply: o.apply}
}

// number gives an enqueue its positions and seals its frame, which holds
// the first of them. The pipeline calls it in the order records join.
func (o *Log) number(r *record) {
	if r.msgs == nil {
		return
	}
	r.first = o.next
	setFramePosition(r.frame, o.next)
	sealFrame(r.frame)
	o.next += uint64(len(r.msgs))
}

// write writes the group's frames at the end of the last segment, starting
// a new segment first when they would not fit.
func (o *Log) write(g *groupcommit.Group[record]) error {
	if err := o.Failure(); err != nil {
		return err
	}
	o.buf = o.buf[:0]
	tail := o.tail
	for _, r := range g.Writes() {
		o.buf = append(o.buf, r.frame...)
		if r.msgs != nil {
			tail = r.first + uint64(len(r.msgs))
		}
	}
	defer func() {
		if cap(o.buf) > maxGroupBuffer {
			o.buf = nil
		}
	}()
	if err := o.rotateIfFull(len(o.buf)); err != nil {
		return o.fail(err)
	}
	_, err := o.file.WriteAt(o.buf, o.size)
	o.size += int64(len(o.buf))
	if err != nil {
		return o.fail(err)
	}
	o.tail = tail
	return nil
}

// sync makes the written groups durable.
func (o *Log) sync() error {
	if err := fsync.Data(o.file); err != nil {
		return o.fail(err)
	}
	return nil
}

// apply adds a synced group's enqueued entries to the index and drops its
// dispatched ones, then deletes the segments that no longer hold anything
// pending.
func (o *Log) apply(g *groupcommit.Group[record]) {
	released := 0
	o.mu.Lock()
	last := o.segments[len(o.segments)-1]
	for _, r := range g.Writes() {
		if r.msgs != nil {
			o.index.add(r.first, r.msgs)
			last.live += len(r.msgs)
			continue
		}
		for _, p := range r.positions {
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
func (o *Log) segmentOf(pos uint64) *segment {
	i := sort.Search(len(o.segments), func(i int) bool { return o.segments[i].first > pos })
	return o.segments[i-1]
}

// dropDispatchedSegmentsLocked removes from the list the oldest segments
// with nothing pending, never the last one, and returns them. Only from the
// front: a later segment may hold the marks of an earlier one's entries,
// and deleting it first would bring those entries back after a restart.
func (o *Log) dropDispatchedSegmentsLocked() []*segment {
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
func (o *Log) deleteSegments(segs []*segment) {
	for _, s := range segs {
		if os.Remove(s.path) != nil || fsync.Dir(o.dir) != nil {
			return
		}
	}
}

// rotateIfFull starts a new segment, named by the group's first position
// (tail: no position in the group is below it), when the group's n bytes
// would not fit in the last one. Only the committer changes the segment
// list, so it reads it without the lock. A group larger than a whole
// segment goes into a fresh one, which grows past its preallocated size.
func (o *Log) rotateIfFull(n int) error {
	if o.size+int64(n) <= o.segmentSize || o.size == int64(len(segmentMagic)) {
		return nil
	}
	if o.tail == o.segments[len(o.segments)-1].first {
		// No position was taken since the last segment began (it holds
		// marks only): a new one would need its name. Marks are bounded
		// by the entries before them, so the segment cannot grow far.
		return nil
	}
	f, err := createSegment(o.dir, o.tail, o.segmentSize)
	if err != nil {
		return err
	}
	_ = o.file.Close() // every group written to it is synced
	o.file, o.size = f, int64(len(segmentMagic))
	o.mu.Lock()
	o.segments = append(o.segments, &segment{path: f.Name(), first: o.tail})
	o.mu.Unlock()
	return nil
}
