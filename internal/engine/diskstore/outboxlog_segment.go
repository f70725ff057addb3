package diskstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// The outbox log lives in segment files under <data-dir>/outbox, each named
// by the position of the first entry it may hold (20 decimal digits, so
// names sort as positions do). A segment starts with segmentMagic and holds
// frames: a 4-byte little-endian body length, the body's CRC-32C, the body.
//
// Bodies:
//
//	enqueue:    1, first position (8 bytes BE), count (uvarint),
//	            then per message: length (4 bytes LE), encoded message
//	dispatched: 2, count (uvarint), then the positions (uvarint each)
const (
	logDirName       = "outbox"
	segmentSuffix    = ".log"
	segmentMagic     = "esoutbx1"
	frameHeaderSize  = 8
	recordEnqueue    = 1
	recordDispatched = 2
	// enqueueHeaderSize is the frame header, the type and the first
	// position: what the committer fills in.
	enqueueHeaderSize = frameHeaderSize + 1 + 8
	// maxSegmentSize is when the committer starts a new segment. Segments
	// are deleted whole once every entry in them is dispatched, so a
	// smaller size frees disk sooner; a larger one costs fewer file
	// creations (two fsyncs each).
	maxSegmentSize = 16 << 20
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// segment is one file of the log and what it holds.
type segment struct {
	path  string
	first uint64 // the position in its name
	live  int    // its entries not yet dispatched
}

func segmentPath(dir string, first uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", first, segmentSuffix))
}

// listSegments returns the segments in dir, oldest first. Other files are
// not the log's and are left alone.
func listSegments(dir string) ([]*segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []*segment
	for _, e := range ents {
		name := e.Name()
		digits, ok := strings.CutSuffix(name, segmentSuffix)
		if !ok || len(digits) != 20 || !e.Type().IsRegular() {
			continue
		}
		first, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, &segment{path: filepath.Join(dir, name), first: first})
	}
	slices.SortFunc(segs, func(a, b *segment) int { return compareUint64(a.first, b.first) })
	return segs, nil
}

func compareUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// errTornFrame marks the end of the valid frames of a segment.
var errTornFrame = errors.New("incomplete or damaged frame")

// nextFrame returns the body of the frame at the start of b and the frame's
// size, or errTornFrame when b does not start with a whole, intact frame.
func nextFrame(b []byte) (body []byte, size int, err error) {
	if len(b) < frameHeaderSize {
		return nil, 0, errTornFrame
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || uint64(n) > uint64(len(b)-frameHeaderSize) {
		return nil, 0, errTornFrame
	}
	body = b[frameHeaderSize : frameHeaderSize+int(n)]
	if crc32.Checksum(body, crc32c) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, errTornFrame
	}
	return body, frameHeaderSize + int(n), nil
}

// sealFrame fills in the length and checksum of a frame whose body follows
// its header in frame.
func sealFrame(frame []byte) {
	body := frame[frameHeaderSize:]
	binary.LittleEndian.PutUint32(frame, uint32(len(body)))
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(body, crc32c))
}

// newEnqueueFrame encodes msgs as an enqueue frame. The committer fills in
// the first position and seals it (setFramePosition, sealFrame): positions
// are given in log order.
func newEnqueueFrame(msgs []engine.Message) []byte {
	size := enqueueHeaderSize + binary.MaxVarintLen64
	for i := range msgs {
		size += 4 + encodedSizeHint(&msgs[i])
	}
	frame := make([]byte, enqueueHeaderSize, size)
	frame[frameHeaderSize] = recordEnqueue
	frame = binary.AppendUvarint(frame, uint64(len(msgs)))
	for i := range msgs {
		at := len(frame)
		frame = append(frame, 0, 0, 0, 0)
		frame = appendMessage(frame, &msgs[i])
		binary.LittleEndian.PutUint32(frame[at:], uint32(len(frame)-at-4))
	}
	return frame
}

// setFramePosition puts the first position into an enqueue frame.
func setFramePosition(frame []byte, first uint64) {
	binary.BigEndian.PutUint64(frame[frameHeaderSize+1:], first)
}

// newDispatchedFrame encodes positions as a sealed dispatched frame.
func newDispatchedFrame(positions []uint64) []byte {
	frame := make([]byte, frameHeaderSize+1, frameHeaderSize+1+binary.MaxVarintLen64*(len(positions)+1))
	frame[frameHeaderSize] = recordDispatched
	frame = binary.AppendUvarint(frame, uint64(len(positions)))
	for _, p := range positions {
		frame = binary.AppendUvarint(frame, p)
	}
	sealFrame(frame)
	return frame
}

// loggedEntry is an enqueued entry read back from a segment, not decoded
// until it is known to be still pending.
type loggedEntry struct {
	position uint64
	raw      []byte
	seg      *segment
}

// parseRecord reads one frame body: an enqueue's entries are appended to
// entries, a dispatched record's positions are added to dispatched. next is
// the position the next enqueue must start at or after; the new one is
// returned.
func parseRecord(body []byte, seg *segment, next uint64, entries []loggedEntry, dispatched map[uint64]struct{}) (
	[]loggedEntry, uint64, error) {
	switch body[0] {
	case recordEnqueue:
		if len(body) < 9 {
			return nil, 0, fmt.Errorf("enqueue record of %d bytes: %w", len(body), errCorrupt)
		}
		first := binary.BigEndian.Uint64(body[1:])
		if first < next {
			return nil, 0, fmt.Errorf("enqueue record at position %d after position %d: %w", first, next, errCorrupt)
		}
		r := reader{b: body[9:]}
		count := r.uvarint()
		for i := uint64(0); i < count && r.err == nil; i++ {
			size := r.bytes(4)
			if r.err != nil {
				break
			}
			raw := r.bytes(uint64(binary.LittleEndian.Uint32(size)))
			entries = append(entries, loggedEntry{position: first + i, raw: raw, seg: seg})
		}
		if r.err == nil && len(r.b) > 0 {
			r.err = fmt.Errorf("%w: %d bytes after the messages", errCorrupt, len(r.b))
		}
		if r.err != nil {
			return nil, 0, fmt.Errorf("enqueue record at position %d: %w", first, r.err)
		}
		return entries, first + count, nil
	case recordDispatched:
		r := reader{b: body[1:]}
		count := r.uvarint()
		for i := uint64(0); i < count && r.err == nil; i++ {
			dispatched[r.uvarint()] = struct{}{}
		}
		if r.err == nil && len(r.b) > 0 {
			r.err = fmt.Errorf("%w: %d bytes after the positions", errCorrupt, len(r.b))
		}
		if r.err != nil {
			return nil, 0, fmt.Errorf("dispatched record: %w", r.err)
		}
		return entries, next, nil
	default:
		return nil, 0, fmt.Errorf("record type %d: %w", body[0], errCorrupt)
	}
}
