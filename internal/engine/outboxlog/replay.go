package outboxlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
)

// replay is what reading the segments back at Open finds.
type replay struct {
	// next is the position the next enqueue record may start at.
	next       uint64
	entries    []loggedEntry
	dispatched map[uint64]struct{}
	// validSize is the end of the last whole frame of the last segment
	// with a header.
	validSize int64
	// headerless: the last segment was created, but its header never
	// reached the disk, so nothing was written to it.
	headerless bool
	// torn is the length of an unfinished write after validSize.
	torn      int64
	recovered string // what Log.Recovered says about it
}

// loggedEntry is an enqueued entry read back from a segment, not decoded
// until it is known to be still pending. raw shares the segment's data,
// which is read only to be decoded (DecodeMessage copies what it keeps).
type loggedEntry struct {
	position uint64
	raw      []byte
	seg      *segment
}

// readBack reads every segment, oldest first.
func readBack(segs []*segment) (*replay, error) {
	rp := &replay{next: 1, dispatched: make(map[uint64]struct{})}
	for i, seg := range segs {
		last := i == len(segs)-1
		data, err := os.ReadFile(seg.path)
		if err != nil {
			return nil, fmt.Errorf("read the outbox log: %w", err)
		}
		if len(data) < len(segmentMagic) || string(data[:len(segmentMagic)]) != segmentMagic {
			if last && len(data) < len(segmentMagic) {
				rp.headerless = true
				break
			}
			return nil, damagedSegment(seg.path, 0, errors.New("not an outbox log segment"))
		}
		if seg.first < rp.next {
			return nil, damagedSegment(seg.path, 0, fmt.Errorf("starts at position %d, before position %d", seg.first, rp.next))
		}
		rp.next = seg.first
		off := len(segmentMagic)
		for off < len(data) {
			body, size, err := nextFrame(data[off:])
			if err != nil {
				if allZero(data[off:]) {
					break // the preallocated rest
				}
				if !last {
					return nil, damagedSegment(seg.path, off, err)
				}
				rp.torn = int64(len(data) - off)
				rp.recovered = fmt.Sprintf("dropped %d bytes of an unfinished write at the end of %s", rp.torn, seg.path)
				break
			}
			if err := rp.record(body, seg); err != nil {
				return nil, damagedSegment(seg.path, off, err)
			}
			off += size
		}
		rp.validSize = int64(off)
	}
	return rp, nil
}

// record reads one frame body of seg: an enqueue's entries join entries, a
// dispatched record's positions join dispatched.
func (rp *replay) record(body []byte, seg *segment) error {
	switch body[0] {
	case recordEnqueue:
		if len(body) < 9 {
			return fmt.Errorf("enqueue record of %d bytes: %w", len(body), codec.ErrCorrupt)
		}
		first := binary.BigEndian.Uint64(body[1:])
		if first < rp.next {
			return fmt.Errorf("enqueue record at position %d after position %d: %w", first, rp.next, codec.ErrCorrupt)
		}
		r := codec.NewReader(body[9:])
		count := r.Uvarint()
		for i := uint64(0); i < count && r.Err() == nil; i++ {
			raw := r.Slice(uint64(r.Uint32()))
			rp.entries = append(rp.entries, loggedEntry{position: first + i, raw: raw, seg: seg})
		}
		if err := r.End("the messages"); err != nil {
			return fmt.Errorf("enqueue record at position %d: %w", first, err)
		}
		rp.next = first + count
		return nil
	case recordDispatched:
		r := codec.NewReader(body[1:])
		count := r.Uvarint()
		for i := uint64(0); i < count && r.Err() == nil; i++ {
			rp.dispatched[r.Uvarint()] = struct{}{}
		}
		if err := r.End("the positions"); err != nil {
			return fmt.Errorf("dispatched record: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("record type %d: %w", body[0], codec.ErrCorrupt)
	}
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
