package storebench

import (
	"testing"
	"time"
)

// BenchmarkIngest runs every write variant side by side, so that with
// -count N each round measures all of them under the same machine load.
// Names: <writers>/<store>/<variant>; "64w-x100" is 64 writers each writing
// 100 events per durable write (an NDJSON request).
func BenchmarkIngest(b *testing.B) {
	b.Run("1w/raw/fdatasync", rawFsync)
	b.Run("1w/bbolt/update", func(b *testing.B) { boltUpdate(b, false, 1) })
	b.Run("1w/bbolt/group-commit", func(b *testing.B) { boltGroupCommit(b, false, 1, false) })
	b.Run("1w/pebble/sync", func(b *testing.B) { pebbleSet(b, false) })

	b.Run("64w/bbolt/fsync-per-event", func(b *testing.B) { boltUpdate(b, true, 1) })
	b.Run("64w/bbolt/Batch-10ms", func(b *testing.B) { boltBatch(b, 10*time.Millisecond, 1) })
	b.Run("64w/bbolt/Batch-1ms", func(b *testing.B) { boltBatch(b, time.Millisecond, 1) })
	b.Run("64w/bbolt/group-commit-noyield", func(b *testing.B) { boltGroupCommit(b, true, 1, true) })
	b.Run("64w/bbolt/group-commit", func(b *testing.B) { boltGroupCommit(b, true, 1, false) })
	b.Run("64w/pebble/sync", func(b *testing.B) { pebbleSet(b, true) })
	b.Run("64w/pebble/batch-sync", func(b *testing.B) { pebbleBatch(b, true, 1) })
	b.Run("64w/pebble/ordered-sync", func(b *testing.B) { pebbleOrdered(b, true) })

	b.Run("64w-x100/bbolt/group-commit", func(b *testing.B) { boltGroupCommit(b, true, 100, false) })
	b.Run("64w-x100/pebble/batch-sync", func(b *testing.B) { pebbleBatch(b, true, 100) })
}
