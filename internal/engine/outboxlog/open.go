package outboxlog

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/fsync"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/groupcommit"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

// Options configure a log; the zero value is the product's.
type Options struct {
	// Capacity is the most entries the log holds pending
	// (outbox.DefaultCapacity when <= 0).
	Capacity int
	// SegmentSize is the size at which a new segment starts
	// (DefaultSegmentSize when <= 0).
	SegmentSize int64
	// SyncEachWrite gives every Enqueue and MarkDispatched an fdatasync of
	// its own: the baseline the benchmarks compare group commit with.
	SyncEachWrite bool
	// ObserveCommit, when set, is told of each group committed: its
	// writes, and how long their write and their fdatasync took
	// (groupcommit.Options.Observe).
	ObserveCommit func(writes int, write, sync time.Duration)
}

func (o *Options) setDefaults() {
	if o.Capacity <= 0 {
		o.Capacity = outbox.DefaultCapacity
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = DefaultSegmentSize
	}
}

// Open opens (creating when missing) the outbox log in dir. Entries a
// previous run did not mark dispatched are pending again, even past the
// capacity (which then refuses new ones until they drain). An unfinished
// write at the very end of the log, which no caller was told had
// succeeded, is dropped (see Recovered); damage anywhere else is an error
// naming the file, never a silent reset.
func Open(dir string, opts Options) (*Log, error) {
	opts.setDefaults()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create outbox log directory %s: %w", dir, err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("open the outbox log in %s: %w", dir, err)
	}
	rp, err := readBack(segs)
	if err != nil {
		return nil, err
	}
	o := &Log{
		dir: dir, capacity: int64(opts.Capacity), segmentSize: opts.SegmentSize, signal: make(chan struct{}, 1),
		segments: segs, next: rp.next, tail: rp.next, recovered: rp.recovered,
	}
	if err := o.load(rp); err != nil {
		return nil, err
	}
	o.reserved.Store(int64(o.index.live))
	if err := o.openLastSegment(rp); err != nil {
		return nil, err
	}
	o.deleteSegments(o.dropDispatchedSegmentsLocked())
	if o.index.live > 0 {
		o.signal <- struct{}{} // work left from the last run
	}
	pipe := groupcommit.Options{Yield: true, Observe: opts.ObserveCommit}
	if opts.SyncEachWrite {
		pipe.MaxWrites = 1
	}
	o.commits = groupcommit.New(o.env(), pipe)
	return o, nil
}

// load puts the entries read back that no mark dispatched into the index.
// They are decoded only now, once known to be pending.
func (o *Log) load(rp *replay) error {
	for _, e := range rp.entries {
		if _, ok := rp.dispatched[e.position]; ok {
			continue
		}
		m, err := codec.DecodeMessage(e.raw)
		if err != nil {
			return damagedSegment(e.seg.path, -1, fmt.Errorf("entry %d: %w", e.position, err))
		}
		o.index.add(e.position, []engine.Message{m})
		e.seg.live++
	}
	return nil
}

// openLastSegment opens the last segment for appending, cutting off an
// unfinished write, or creates the first one.
func (o *Log) openLastSegment(rp *replay) error {
	if n := len(o.segments); rp.headerless {
		if err := os.Remove(o.segments[n-1].path); err != nil {
			return fmt.Errorf("open the outbox log: %w", err)
		}
		o.segments = o.segments[:n-1]
	}
	if len(o.segments) == 0 {
		f, err := createSegment(o.dir, o.next, o.segmentSize)
		if err != nil {
			return err
		}
		o.file, o.size = f, int64(len(segmentMagic))
		o.segments = []*segment{{path: f.Name(), first: o.next}}
		return nil
	}
	last := o.segments[len(o.segments)-1]
	f, err := os.OpenFile(last.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open the outbox log: %w", err)
	}
	if rp.torn > 0 {
		// Zeros over the unfinished write, so that what is written next
		// is not followed by its remains.
		if err = writeZeros(f, rp.validSize, rp.validSize+rp.torn); err == nil {
			err = fsync.Data(f)
		}
		if err != nil {
			_ = f.Close()
			return fmt.Errorf("clear the unfinished write off %s: %w", last.path, err)
		}
	}
	o.file, o.size = f, rp.validSize
	return nil
}

// damagedSegment is the start-up error for a segment that does not read.
func damagedSegment(path string, offset int, err error) error {
	where := ""
	if offset >= 0 {
		where = fmt.Sprintf(" at byte %d", offset)
	}
	return fmt.Errorf("outbox log %s is damaged%s (restore the data directory from a backup, "+
		"or move the file away to drop the events in it): %w", path, where, errors.Join(err, codec.ErrCorrupt))
}
