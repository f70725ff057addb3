package diskstore

import (
	"errors"
	"path/filepath"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outboxlog"
)

// ProcessorBatchDelay is the processor's batch delay (core.Config.
// BatchDelay) to use with disk storage: a commit to the data file costs two
// fdatasyncs whatever it holds, and waiting 10 ms for a fuller batch took
// the processor from ~150 commits/s to ~60 and durable HTTP ingest up 7-9%
// (make bench-http, clients in another process; 5 ms gained less, 20 ms
// no more). It delays what reads and projections see, never a 202.
const ProcessorBatchDelay = 10 * time.Millisecond

// Storage is everything the engine stores: the data file and the outbox
// log beside it. It holds the parts to put in core.Config, and the files to
// close after the engine.
type Storage struct {
	DB         *DB
	Store      *EventStore
	Outbox     *outboxlog.Log
	ReadModels *ReadModels
}

// OpenStorage opens (or creates) the data file in dir and the outbox log in
// dir/outbox, holding outboxCapacity entries (<= 0: the default). Entries a
// previous run left pending in the outbox are dispatched again; the event
// store's idempotency by ID keeps that from storing anything twice. The
// data file is opened first: its lock keeps a second manager away from
// the log too.
func OpenStorage(dir string, outboxCapacity int) (*Storage, error) {
	db, err := Open(dir)
	if err != nil {
		return nil, err
	}
	ob, err := outboxlog.Open(filepath.Join(dir, "outbox"), outboxlog.Options{Capacity: outboxCapacity})
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return &Storage{DB: db, Store: NewEventStore(db), Outbox: ob, ReadModels: NewReadModels(db)}, nil
}

// Close closes the parts, then the file. Closing the engine closes the
// parts already; closing them twice is harmless.
func (s *Storage) Close() error {
	return errors.Join(s.Outbox.Close(), s.Store.Close(), s.ReadModels.Close(), s.DB.Close())
}
