// Package disk is the storage of --storage=disk: the bbolt data file
// (boltstore: the event store and the read models) and the outbox log
// (outboxlog) beside it, in one data directory.
package disk

import (
	"errors"
	"path/filepath"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/boltstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outboxlog"
)

// ProcessorBatchDelay is the processor's batch delay (core.Config.
// BatchDelay) to use with disk storage: a commit to the data file costs two
// fdatasyncs whatever it holds, so waiting for a fuller batch means fewer
// commits and more durable ingest (docs/performance.md). It delays what
// reads and projections see, never a 202.
const ProcessorBatchDelay = 10 * time.Millisecond

// outboxDir is the outbox log's directory inside the data directory.
const outboxDir = "outbox"

// Storage is everything the engine stores: the data file and the outbox
// log beside it. It holds the parts to put in core.Config, and the files to
// close after the engine.
type Storage struct {
	DB         *boltstore.DB
	Store      *boltstore.EventStore
	Outbox     *outboxlog.Log
	ReadModels *boltstore.ReadModels
}

// Options configure the storage; the zero value is the product's.
type Options struct {
	// OutboxCapacity is the most entries the outbox holds (its default
	// when <= 0).
	OutboxCapacity int
	// SyncEachWrite gives every write to either file a sync of its own:
	// the baseline the benchmarks compare group commit with.
	SyncEachWrite bool
	// ObserveDataCommit and ObserveOutboxCommit, when set, are told of each
	// group commit of the data file and of the outbox log
	// (groupcommit.Options.Observe): the manager's storage metrics.
	ObserveDataCommit, ObserveOutboxCommit func(writes int, write, sync time.Duration)
}

// Open opens (or creates) the data file in dir and the outbox log in
// dir/outbox. Entries a previous run left pending in the outbox are
// dispatched again; the event store's idempotency by ID keeps that from
// storing anything twice. The data file is opened first: its lock keeps a
// second manager away from the log too.
func Open(dir string, opts Options) (*Storage, error) {
	db, err := boltstore.Open(dir, boltstore.Options{SyncEachWrite: opts.SyncEachWrite, ObserveCommit: opts.ObserveDataCommit})
	if err != nil {
		return nil, err
	}
	ob, err := outboxlog.Open(filepath.Join(dir, outboxDir), outboxlog.Options{
		Capacity: opts.OutboxCapacity, SyncEachWrite: opts.SyncEachWrite, ObserveCommit: opts.ObserveOutboxCommit,
	})
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return &Storage{DB: db, Store: boltstore.NewEventStore(db), Outbox: ob, ReadModels: boltstore.NewReadModels(db)}, nil
}

// Close closes the parts, then the file. Closing the engine closes the
// parts already; closing them twice is harmless.
func (s *Storage) Close() error {
	return errors.Join(s.Outbox.Close(), s.Store.Close(), s.ReadModels.Close(), s.DB.Close())
}
