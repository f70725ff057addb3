package diskstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

// Outbox is the durable outbox: Enqueue returns once the messages are in
// the data file, so a 202 survives a crash; the processor reads them back
// by position and deletes them once they are in the event store.
type Outbox struct {
	db       *DB
	capacity int64
	// pending counts entries not yet dispatched, reserved before the write
	// so concurrent Enqueues cannot together pass the capacity.
	pending atomic.Int64
	signal  chan struct{}
	closed  atomic.Bool
	once    sync.Once
}

var _ outbox.Outbox = (*Outbox)(nil)

// NewOutbox opens the outbox in db holding at most capacity entries
// (outbox.DefaultCapacity when capacity <= 0). Entries left by a previous
// run count against the capacity and are pending again.
func NewOutbox(db *DB, capacity int) (*Outbox, error) {
	if capacity <= 0 {
		capacity = outbox.DefaultCapacity
	}
	o := &Outbox{db: db, capacity: int64(capacity), signal: make(chan struct{}, 1)}
	err := db.View(func(tx *bolt.Tx) error {
		o.pending.Store(int64(tx.Bucket(bucketOutbox).Stats().KeyN))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open the outbox in %s: %w", db.Path(), err)
	}
	if o.pending.Load() > 0 {
		o.signal <- struct{}{} // work left from the last run
	}
	return o, nil
}

// HasRoom reports whether n more entries would fit now; Ingest asks it
// before validating, so an overloaded manager refuses cheaply.
func (o *Outbox) HasRoom(n int) bool {
	return o.pending.Load()+int64(n) <= o.capacity
}

// reserve claims n slots under the capacity, all or none.
func (o *Outbox) reserve(n int64) bool {
	for {
		cur := o.pending.Load()
		if cur+n > o.capacity {
			return false
		}
		if o.pending.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// Enqueue writes msgs under the next positions, all or none, and returns
// once they are on disk.
func (o *Outbox) Enqueue(ctx context.Context, msgs []engine.Message) error {
	if o.closed.Load() {
		return outbox.ErrClosed
	}
	if len(msgs) == 0 {
		return nil
	}
	if !o.reserve(int64(len(msgs))) {
		return outbox.ErrFull
	}
	// Encode outside the transaction: the committer runs every writer's
	// function on one goroutine, so work done here runs in parallel.
	values := make([][]byte, len(msgs))
	size := 0
	for i := range msgs {
		size += 64 + len(msgs[i].Payload)
	}
	buf := make([]byte, 0, size)
	for i := range msgs {
		start := len(buf)
		buf = appendMessage(buf, &msgs[i])
		values[i] = buf[start:len(buf):len(buf)]
	}
	err := o.db.Update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		b.FillPercent = 1.0 // positions only grow
		var key [8]byte
		for _, v := range values {
			pos, err := b.NextSequence()
			if err != nil {
				return err
			}
			binary.BigEndian.PutUint64(key[:], pos)
			if err := b.Put(key[:], v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		o.pending.Add(-int64(len(msgs)))
		return err
	}
	select {
	case o.signal <- struct{}{}:
	default:
	}
	return nil
}

// Pending returns up to limit entries, oldest first.
func (o *Outbox) Pending(_ context.Context, limit int) ([]outbox.Entry, error) {
	if o.closed.Load() {
		return nil, outbox.ErrClosed
	}
	if limit <= 0 {
		return nil, nil
	}
	var entries []outbox.Entry
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && len(entries) < limit; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("outbox key %x: %w", k, errCorrupt)
			}
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("outbox entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			entries = append(entries, outbox.Entry{Position: binary.BigEndian.Uint64(k), Message: m})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the outbox in %s: %w", o.db.Path(), err)
	}
	return entries, nil
}

// MarkDispatched deletes entries by position; unknown ones are ignored.
func (o *Outbox) MarkDispatched(ctx context.Context, positions []uint64) error {
	if o.closed.Load() {
		return outbox.ErrClosed
	}
	if len(positions) == 0 {
		return nil
	}
	deleted := int64(0)
	err := o.db.Update(ctx, func(tx *bolt.Tx) error {
		deleted = 0
		b := tx.Bucket(bucketOutbox)
		var key [8]byte
		for _, p := range positions {
			binary.BigEndian.PutUint64(key[:], p)
			if b.Get(key[:]) == nil {
				continue
			}
			if err := b.Delete(key[:]); err != nil {
				return err
			}
			deleted++
		}
		return nil
	})
	if err != nil {
		return err
	}
	o.pending.Add(-deleted)
	return nil
}

// Len returns the number of entries not yet dispatched.
func (o *Outbox) Len() int { return int(o.pending.Load()) }

// Signal receives a value after an Enqueue.
func (o *Outbox) Signal() <-chan struct{} { return o.signal }

// Close makes later calls fail with outbox.ErrClosed. It does not close
// the DB, which its owner closes after every part.
func (o *Outbox) Close() error {
	o.once.Do(func() { o.closed.Store(true) })
	return nil
}
