package storebench

import (
	"log"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// idCounter hands out event numbers (and pebble keys) without a lock.
type idCounter struct{ n atomic.Uint64 }

// next reserves count numbers and returns the one before the first.
func (c *idCounter) next(count int) uint64 { return c.n.Add(uint64(count)) - uint64(count) }

// quietLogger drops pebble's info logs (flushes, compactions) from the
// benchmark output and keeps errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(f string, args ...any) { log.Printf(f, args...) }
func (quietLogger) Fatalf(f string, args ...any) { log.Fatalf(f, args...) }

// openPebble opens a fresh pebble directory in dir with default options.
func openPebble(tb testing.TB, dir string) *pebble.DB {
	tb.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// pebbleSet is db.Set(key, value, pebble.Sync) per event: pebble's commit
// pipeline lets concurrent synced writes share one WAL fdatasync. Keys come
// from an atomic counter, so a reader may briefly see key n+1 before n.
func pebbleSet(b *testing.B, parallel bool) {
	db := openPebble(b, b.TempDir())
	var ids idCounter
	ingest(b, parallel, 1, func() func() error {
		buf := make([]byte, 0, len(eventTemplate))
		return func() error {
			n := ids.next(1) + 1
			return db.Set(SeqKey(n), eventValue(buf, n), pebble.Sync)
		}
	})
}

// pebbleBatch commits a Batch of perOp events with pebble.Sync: the
// idiomatic way to write several keys atomically (one NDJSON request).
func pebbleBatch(b *testing.B, parallel bool, perOp int) {
	db := openPebble(b, b.TempDir())
	var ids idCounter
	ingest(b, parallel, perOp, func() func() error {
		buf := make([]byte, 0, len(eventTemplate))
		return func() error {
			batch := db.NewBatch()
			defer func() { _ = batch.Close() }()
			first := ids.next(perOp)
			for i := range perOp {
				n := first + uint64(i) + 1
				if err := batch.Set(SeqKey(n), eventValue(buf, n), nil); err != nil {
					return err
				}
			}
			return batch.Commit(pebble.Sync)
		}
	})
}

// pebbleOrdered gives pebble bbolt's ordering: the key is taken and the
// batch enters the commit pipeline under one mutex (ApplyNoSyncWait), so keys
// become visible in key order, and the fsync is awaited outside it
// (SyncWait), so waiting writers still share one fdatasync. ApplyNoSyncWait
// is marked experimental in pebble.
func pebbleOrdered(b *testing.B, parallel bool) {
	db := openPebble(b, b.TempDir())
	var (
		mu  sync.Mutex
		seq uint64
	)
	ingest(b, parallel, 1, func() func() error {
		buf := make([]byte, 0, len(eventTemplate))
		return func() error {
			batch := db.NewBatch()
			defer func() { _ = batch.Close() }()
			mu.Lock()
			seq++
			err := batch.Set(SeqKey(seq), eventValue(buf, seq), nil)
			if err == nil {
				err = db.ApplyNoSyncWait(batch, pebble.Sync)
			}
			mu.Unlock()
			if err != nil {
				return err
			}
			return batch.SyncWait()
		}
	})
}
