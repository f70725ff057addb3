package outboxlog

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/fsync"
)

// The log lives in segment files, each named by the position of the first
// entry it may hold (20 decimal digits, so names sort as positions do). A
// segment starts with segmentMagic and holds frames (frame.go).
const (
	segmentSuffix = ".log"
	segmentMagic  = "esoutbx1"
	// DefaultSegmentSize is when the committer starts a new segment.
	// Segments are deleted whole once every entry in them is dispatched, so
	// a smaller size frees disk sooner; a larger one costs fewer file
	// creations (two fsyncs each).
	DefaultSegmentSize = 16 << 20
)

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
	slices.SortFunc(segs, func(a, b *segment) int { return cmp.Compare(a.first, b.first) })
	return segs, nil
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
		err = fsync.Data(f)
	}
	if err == nil {
		err = fsync.Dir(dir)
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
