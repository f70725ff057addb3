package storebench

import (
	"context"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"
)

// The read side: a stream read or a projection catching up reads a run of
// consecutive events by key range. Both stores are loaded once per process
// with storedEvents events (the same ~200-byte values) and kept in
// sharedDir for every -count round.
const (
	storedEvents = 1_000_000
	rangeLen     = 1000
	loadBatch    = 10_000
)

// sharedDir holds the loaded stores; TestMain removes it at exit.
var sharedDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "storebench-")
	if err != nil {
		panic(err)
	}
	sharedDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// loaded is a store holding storedEvents events.
type loaded struct {
	once   sync.Once
	err    error
	dir    string
	loadS  float64 // seconds to load (unsynced batches, then one sync)
	sizeMB float64 // on-disk size after the load
	bolt   *bolt.DB
	pebble *pebble.DB
}

var loadedBolt, loadedPebble loaded

// loadBolt fills a bbolt file with storedEvents events, loadBatch per commit.
func loadBolt(b *testing.B) *loaded {
	l := &loadedBolt
	l.once.Do(func() {
		l.dir = filepath.Join(sharedDir, "bbolt")
		if l.err = os.Mkdir(l.dir, 0o700); l.err != nil {
			return
		}
		l.bolt = openBolt(nopCleanup{b}, l.dir)
		start := time.Now()
		bufs := batchValues(loadBatch)
		for first := uint64(0); first < storedEvents && l.err == nil; first += loadBatch {
			l.err = l.bolt.Update(func(tx *bolt.Tx) error {
				_, err := PutEvents(tx.Bucket(eventsBucket), fillBatch(bufs, first)...)
				return err
			})
		}
		l.loadS = time.Since(start).Seconds()
		l.sizeMB = dirMB(l.dir)
	})
	if l.err != nil {
		b.Fatal(l.err)
	}
	return l
}

// loadPebble fills a pebble directory with storedEvents events, loadBatch
// per unsynced batch, then flushes the memtable and compacts the whole range
// so the reads and the size are those of a settled store.
func loadPebble(b *testing.B) *loaded {
	l := &loadedPebble
	l.once.Do(func() {
		l.dir = filepath.Join(sharedDir, "pebble")
		l.pebble = openPebble(nopCleanup{b}, l.dir)
		start := time.Now()
		buf := make([]byte, 0, len(eventTemplate))
		for first := uint64(0); first < storedEvents && l.err == nil; first += loadBatch {
			batch := l.pebble.NewBatch()
			for n := first + 1; n <= first+loadBatch && l.err == nil; n++ {
				l.err = batch.Set(SeqKey(n), eventValue(buf, n), nil)
			}
			if l.err == nil {
				l.err = batch.Commit(pebble.NoSync)
			}
			_ = batch.Close()
		}
		if l.err == nil {
			l.err = l.pebble.Flush()
		}
		l.loadS = time.Since(start).Seconds()
		if l.err == nil {
			l.err = l.pebble.Compact(context.Background(), SeqKey(0), SeqKey(storedEvents+1), true)
		}
		l.sizeMB = dirMB(l.dir)
	})
	if l.err != nil {
		b.Fatal(l.err)
	}
	return l
}

// BenchmarkRangeRead reads rangeLen consecutive events from a random start
// in a store of storedEvents events, copying each value out as a reader
// would. The store fits in the page cache, so this is the warm case.
func BenchmarkRangeRead(b *testing.B) {
	b.Run("bbolt", func(b *testing.B) {
		l := loadBolt(b)
		readRanges(b, l, func(start uint64, out []byte) ([]byte, int, error) {
			n := 0
			err := l.bolt.View(func(tx *bolt.Tx) error {
				c := tx.Bucket(eventsBucket).Cursor()
				for k, v := c.Seek(SeqKey(start)); k != nil && n < rangeLen; k, v = c.Next() {
					out = append(out[:0], v...)
					n++
				}
				return nil
			})
			return out, n, err
		})
	})
	b.Run("pebble", func(b *testing.B) {
		l := loadPebble(b)
		readRanges(b, l, func(start uint64, out []byte) ([]byte, int, error) {
			it, err := l.pebble.NewIter(&pebble.IterOptions{LowerBound: SeqKey(start), UpperBound: SeqKey(start + rangeLen)})
			if err != nil {
				return out, 0, err
			}
			n := 0
			for ok := it.First(); ok; ok = it.Next() {
				out = append(out[:0], it.Value()...)
				n++
			}
			return out, n, it.Close()
		})
	})
}

// readRanges times b.N reads of one range each and reports events/s read,
// the load time and the store's size on disk.
func readRanges(b *testing.B, l *loaded, read func(start uint64, out []byte) ([]byte, int, error)) {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]byte, 0, 256)
	b.ResetTimer()
	for range b.N {
		var (
			n   int
			err error
		)
		out, n, err = read(1+rng.Uint64N(storedEvents-rangeLen), out)
		if err != nil {
			b.Fatal(err)
		}
		if n != rangeLen {
			b.Fatalf("read %d events, want %d", n, rangeLen)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*rangeLen)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(l.loadS, "load-s")
	b.ReportMetric(l.sizeMB, "MB-on-disk")
}

// dirMB is the total size of the regular files under dir, in MB (10^6).
func dirMB(dir string) float64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return float64(total) / 1e6
}

// nopCleanup lets the shared stores outlive the benchmark that loaded them:
// they are closed with the process and removed by TestMain.
type nopCleanup struct{ testing.TB }

// Cleanup drops f.
func (nopCleanup) Cleanup(func()) {}
