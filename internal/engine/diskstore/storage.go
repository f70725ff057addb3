package diskstore

import (
	"errors"
)

// Storage is everything the engine stores, in one data file: the parts to
// put in core.Config, and the file to close after the engine.
type Storage struct {
	DB         *DB
	Store      *EventStore
	Outbox     *Outbox
	ReadModels *ReadModels
}

// OpenStorage opens (or creates) the data file in dir with an outbox of
// outboxCapacity entries (<= 0: the default). Entries a previous run left
// in the outbox are dispatched again; the event store's idempotency by ID
// keeps that from storing anything twice.
func OpenStorage(dir string, outboxCapacity int) (*Storage, error) {
	db, err := Open(dir)
	if err != nil {
		return nil, err
	}
	ob, err := NewOutbox(db, outboxCapacity)
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
