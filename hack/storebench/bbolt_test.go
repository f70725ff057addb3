package storebench

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// eventsBucket is the bucket every bbolt variant appends to.
var eventsBucket = []byte("events")

// openBolt opens a fresh bbolt file in dir with etcd's options (no freelist
// sync, hashmap freelist) and the events bucket created.
func openBolt(tb testing.TB, dir string) *bolt.DB {
	tb.Helper()
	db, err := bolt.Open(filepath.Join(dir, "store.db"), 0o600, &bolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(eventsBucket)
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	return db
}

// boltUpdate is the baseline: one db.Update, so one commit of its own
// (bbolt fdatasyncs twice per commit: the data pages, then the meta page),
// per write.
func boltUpdate(b *testing.B, parallel bool, perOp int) {
	db := openBolt(b, b.TempDir())
	ingest(b, parallel, perOp, func() func() error {
		bufs := batchValues(perOp)
		return func() error {
			return db.Update(func(tx *bolt.Tx) error {
				vs := fillBatch(bufs, tx.Bucket(eventsBucket).Sequence())
				_, err := PutEvents(tx.Bucket(eventsBucket), vs...)
				return err
			})
		}
	})
}

// boltBatch uses bbolt's own coalescing: db.Batch collects calls until
// MaxBatchSize of them are waiting or MaxBatchDelay has passed.
func boltBatch(b *testing.B, delay time.Duration, perOp int) {
	db := openBolt(b, b.TempDir())
	db.MaxBatchDelay = delay
	db.MaxBatchSize = 1000
	ingest(b, true, perOp, func() func() error {
		bufs := batchValues(perOp)
		return func() error {
			return db.Batch(func(tx *bolt.Tx) error {
				vs := fillBatch(bufs, tx.Bucket(eventsBucket).Sequence())
				_, err := PutEvents(tx.Bucket(eventsBucket), vs...)
				return err
			})
		}
	})
}

// boltGroupCommit uses GroupCommitter: no timer, one commit per crowd.
// With noYield the committer takes only the writers already queued when the
// first one arrives, to show what its yield is for.
func boltGroupCommit(b *testing.B, parallel bool, perOp int, noYield bool) {
	db := openBolt(b, b.TempDir())
	g, err := newGroupCommitter(db, string(eventsBucket), noYield)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = g.Close() }()
	var ids idCounter
	ingest(b, parallel, perOp, func() func() error {
		bufs := batchValues(perOp)
		return func() error {
			// The event id is chosen before the key is known, as the HTTP
			// handler does; the key is assigned in the commit.
			_, err := g.Append(fillBatch(bufs, ids.next(perOp))...)
			return err
		}
	})
	b.ReportMetric(float64(b.N*perOp)/float64(g.Commits()), "events/commit")
}

// fillBatch writes events from+1.. into bufs and returns them.
func fillBatch(bufs [][]byte, from uint64) [][]byte {
	for i := range bufs {
		bufs[i] = eventValue(bufs[i], from+uint64(i)+1)
	}
	return bufs
}
