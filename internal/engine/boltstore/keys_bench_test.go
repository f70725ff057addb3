package boltstore

import (
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore/eventstoretest"
)

// BenchmarkEventStoreReadKey reads one key's 100 events from a stream of
// 1k events and from one of 1M in the data file (see
// eventstoretest.RunReadKeyBenchmark).
func BenchmarkEventStoreReadKey(b *testing.B) {
	eventstoretest.RunReadKeyBenchmark(b, func(b *testing.B) eventstore.Store {
		db := openTestDB(b, b.TempDir())
		return NewEventStore(db)
	})
}
