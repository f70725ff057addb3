package diskstore

import (
	"errors"
	"fmt"
	"os"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

// OpenLogOutbox opens (creating when missing) the outbox log in dir,
// holding at most capacity entries (outbox.DefaultCapacity when <= 0).
// Entries a previous run did not mark dispatched are pending again, even
// past the capacity (which then refuses new ones until they drain). An
// unfinished write at the very end of the log, which no caller was told
// had succeeded, is dropped (see Recovered); damage anywhere else is an
// error naming the file, never a silent reset.
func OpenLogOutbox(dir string, capacity int) (*LogOutbox, error) {
	return openLogOutbox(dir, capacity, logOptions{segmentSize: maxSegmentSize})
}

// logOptions are what tests and benchmarks change: one fdatasync per
// write (the baseline the benchmarks compare group commit with) and the
// segment size.
type logOptions struct {
	syncEachWrite bool
	segmentSize   int64
}

func openLogOutbox(dir string, capacity int, opts logOptions) (*LogOutbox, error) {
	if capacity <= 0 {
		capacity = outbox.DefaultCapacity
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create outbox log directory %s: %w", dir, err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("open the outbox log in %s: %w", dir, err)
	}
	o := &LogOutbox{
		dir: dir, capacity: int64(capacity), signal: make(chan struct{}, 1),
		closing: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1),
		next: 1, opts: opts,
	}
	validSize, err := o.replay(segs)
	if err != nil {
		return nil, err
	}
	o.reserved.Store(int64(o.index.live))
	if err := o.openLastSegment(validSize); err != nil {
		return nil, err
	}
	o.deleteSegments(o.dropDispatchedSegmentsLocked())
	if o.index.live > 0 {
		o.signal <- struct{}{} // work left from the last run
	}
	o.group = newLogGroup(o.next, nil, nil)
	go o.syncLoop()
	return o, nil
}

// replay reads every segment into the index and returns the length of the
// last one's valid part (-1 when its header is unfinished).
func (o *LogOutbox) replay(segs []*segment) (int64, error) {
	var entries []loggedEntry
	dispatched := make(map[uint64]struct{})
	validSize := int64(0)
	for i, seg := range segs {
		last := i == len(segs)-1
		data, err := os.ReadFile(seg.path)
		if err != nil {
			return 0, fmt.Errorf("read the outbox log: %w", err)
		}
		if len(data) < len(segmentMagic) || string(data[:len(segmentMagic)]) != segmentMagic {
			if last && len(data) < len(segmentMagic) {
				// Created but its header never reached the disk.
				validSize = -1
				break
			}
			return 0, damagedSegment(seg.path, 0, errors.New("not an outbox log segment"))
		}
		if seg.first < o.next {
			return 0, damagedSegment(seg.path, 0, fmt.Errorf("starts at position %d, before position %d", seg.first, o.next))
		}
		o.next = seg.first
		off := len(segmentMagic)
		for off < len(data) {
			body, size, err := nextFrame(data[off:])
			if err != nil {
				if allZero(data[off:]) {
					break // the preallocated rest
				}
				if !last {
					return 0, damagedSegment(seg.path, off, err)
				}
				o.torn = int64(len(data) - off)
				o.recovered = fmt.Sprintf("dropped %d bytes of an unfinished write at the end of %s", o.torn, seg.path)
				break
			}
			if entries, o.next, err = parseRecord(body, seg, o.next, entries, dispatched); err != nil {
				return 0, damagedSegment(seg.path, off, err)
			}
			off += size
		}
		validSize = int64(off)
	}
	for _, e := range entries {
		if _, ok := dispatched[e.position]; ok {
			continue
		}
		m, err := decodeMessage(e.raw)
		if err != nil {
			return 0, damagedSegment(e.seg.path, -1, fmt.Errorf("entry %d: %w", e.position, err))
		}
		o.index.add(e.position, []engine.Message{m})
		e.seg.live++
	}
	o.segments = segs
	return validSize, nil
}

// damagedSegment is the start-up error for a segment that does not read.
func damagedSegment(path string, offset int, err error) error {
	where := ""
	if offset >= 0 {
		where = fmt.Sprintf(" at byte %d", offset)
	}
	return fmt.Errorf("outbox log %s is damaged%s (restore the data directory from a backup, "+
		"or move the file away to drop the events in it): %w", path, where, errors.Join(err, errCorrupt))
}

// openLastSegment opens the last segment for appending, cutting off an
// unfinished write, or creates the first one.
func (o *LogOutbox) openLastSegment(validSize int64) error {
	if n := len(o.segments); n > 0 && validSize < 0 {
		// An unfinished header: nothing was ever written to it.
		if err := os.Remove(o.segments[n-1].path); err != nil {
			return fmt.Errorf("open the outbox log: %w", err)
		}
		o.segments = o.segments[:n-1]
	}
	if len(o.segments) == 0 {
		f, err := createSegment(o.dir, o.next, o.opts.segmentSize)
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
	if o.torn > 0 {
		// Zeros over the unfinished write, so that what is written next
		// is not followed by its remains.
		if err = writeZeros(f, validSize, validSize+o.torn); err == nil {
			err = fdatasync(f)
		}
		if err != nil {
			_ = f.Close()
			return fmt.Errorf("clear the unfinished write off %s: %w", last.path, err)
		}
	}
	o.file, o.size = f, validSize
	return nil
}

// allZero reports whether b holds only zeros.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
