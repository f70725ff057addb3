package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// Bucket names inside each streams/<stream> bucket.
var (
	bucketEvents = []byte("events")
	bucketIDs    = []byte("ids")
)

// EventStore is the eventstore.Store of --storage=disk: every stream's
// events in the DB's file, appended through its group committer, so that
// concurrent appenders share one fsync. The global position counter is the
// meta bucket's sequence. It is safe for concurrent use.
type EventStore struct {
	db *DB
	// done is closed by Close; waiting subscriptions select on it.
	done chan struct{}
	once sync.Once

	mu sync.Mutex
	// waiters holds, per stream, a channel closed after the next commit that
	// appends to the stream. It exists only while a subscription waits.
	waiters map[string]chan struct{}
}

var _ eventstore.Store = (*EventStore)(nil)

// NewEventStore returns the event store kept in db. Closing the store does
// not close db: its owner does, once every part using it is closed.
func NewEventStore(db *DB) *EventStore {
	return &EventStore{db: db, done: make(chan struct{}), waiters: make(map[string]chan struct{})}
}

// Append adds events to stream as eventstore.Store.Append says, in one
// transaction shared with the other appenders of the moment. Duplicates are
// found by ID against the stream and within events. An empty events slice
// stores nothing and checks nothing.
//
// The events returned for new events are the given ones with Stream,
// Sequence, Position, Time and Version set and Value dropped: they share Headers and
// Payload with the caller (the file holds its own copy). An event already
// stored is returned as Read returns it.
func (s *EventStore) Append(
	ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []engine.Message,
) (eventstore.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append to stream %q: %w", stream, err)
	}
	if err := eventstore.ValidateAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := validateKeys(stream, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if s.closed() {
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	if len(events) == 0 {
		v, err := s.Version(ctx, stream)
		return eventstore.AppendResult{Events: []engine.Message{}, LastSequence: v}, err
	}

	a := newAppendTx(stream, expected, events)
	err := s.db.Update(ctx, a.run)
	// The commit is over, whatever its outcome: bbolt no longer holds the
	// buffer's bytes, so the next append may reuse them.
	a.release()
	if err != nil {
		return eventstore.AppendResult{}, storeError("append to stream", stream, err)
	}
	if a.res.Appended > 0 {
		s.notify(stream)
	}
	return a.res, nil
}

// AppendSize tells the outbox processor to append a stream's share of a
// batch in one call: every Append is a commit with its fsync, so 1024
// events in one Append cost one commit where parts of 128 would cost eight.
func (s *EventStore) AppendSize() int { return 1 << 16 }

// validateKeys rejects what bbolt would refuse as a key, before anything
// is written: a Put that fails halfway would leave part of an append in the
// transaction the other writers share.
func validateKeys(stream string, events []engine.Message) error {
	if len(stream) > bolt.MaxKeySize {
		return fmt.Errorf("%w: stream name of %d bytes, more than the disk store's %d", eventstore.ErrInvalidAppend, len(stream), bolt.MaxKeySize)
	}
	for i := range events {
		if n := len(events[i].ID); n > bolt.MaxKeySize {
			return fmt.Errorf("%w to stream %q: events[%d] has an id of %d bytes, more than the disk store's %d",
				eventstore.ErrInvalidAppend, stream, i, n, bolt.MaxKeySize)
		}
	}
	return nil
}

// Read returns up to limit events of stream after the given sequence, in
// order; a limit of zero or less means eventstore.DefaultReadLimit.
func (s *EventStore) Read(ctx context.Context, stream string, after uint64, limit int) ([]engine.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read stream %q: %w", stream, err)
	}
	if s.closed() {
		return nil, eventstore.ErrClosed
	}
	if limit <= 0 {
		limit = eventstore.DefaultReadLimit
	}
	events, err := s.read(stream, after, limit)
	if err != nil {
		return nil, storeError("read stream", stream, err)
	}
	return events, nil
}

// read reads in one read-only transaction; codec.DecodeMessage copies every
// event out of bbolt's memory, which is only valid inside it.
func (s *EventStore) read(stream string, after uint64, limit int) ([]engine.Message, error) {
	if after == math.MaxUint64 {
		return nil, nil
	}
	var out []engine.Message
	err := s.db.View(func(tx *bolt.Tx) error {
		evB := eventsBucket(tx, stream)
		if evB == nil {
			return nil
		}
		c := evB.Cursor()
		last, err := lastSequence(c)
		if err != nil || after >= last {
			return err
		}
		out = make([]engine.Message, 0, min(uint64(limit), last-after))
		for k, v := c.Seek(sequenceKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			m, err := codec.DecodeMessage(v)
			if err != nil {
				return fmt.Errorf("sequence %x: %w", k, err)
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// Version returns the stream's last sequence, 0 for an unknown stream.
func (s *EventStore) Version(ctx context.Context, stream string) (uint64, error) {
	return s.edge(ctx, "version of stream", stream, (*bolt.Cursor).Last)
}

// edge returns the sequence of the event at one end of stream (what says
// which call asks), 0 for a stream without events.
func (s *EventStore) edge(ctx context.Context, what, stream string, end func(*bolt.Cursor) ([]byte, []byte)) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("%s %q: %w", what, stream, err)
	}
	if s.closed() {
		return 0, eventstore.ErrClosed
	}
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		evB := eventsBucket(tx, stream)
		if evB == nil {
			return nil
		}
		k, _ := end(evB.Cursor())
		var err error
		seq, err = sequenceOf(k)
		return err
	})
	if err != nil {
		return 0, storeError(what, stream, err)
	}
	return seq, nil
}

// Subscribe returns a subscription to stream after the given sequence. It
// starts no goroutine: each Next reads from the file and waits only when it
// has caught up. ctx bounds this call alone.
func (s *EventStore) Subscribe(ctx context.Context, stream string, after uint64) (eventstore.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribe to stream %q: %w", stream, err)
	}
	if s.closed() {
		return nil, eventstore.ErrClosed
	}
	return &subscription{store: s, stream: stream, after: after, done: make(chan struct{})}, nil
}

// Close ends every subscription; later calls return eventstore.ErrClosed.
// It leaves the DB open for its owner to close. Closing again is a no-op.
func (s *EventStore) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *EventStore) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// notify wakes the subscriptions waiting on stream. It runs after the
// commit, so a woken subscription's read sees the events.
func (s *EventStore) notify(stream string) {
	s.mu.Lock()
	if ch, ok := s.waiters[stream]; ok {
		close(ch)
		delete(s.waiters, stream)
	}
	s.mu.Unlock()
}

// appended returns a channel closed after the stream's next append.
func (s *EventStore) appended(stream string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.waiters[stream]
	if !ok {
		ch = make(chan struct{})
		s.waiters[stream] = ch
	}
	return ch
}

// storeError adds what failed to err, and makes the DB's ErrClosed an
// eventstore.ErrClosed too. The eventstore package's own errors (conflict,
// invalid append) already say what failed and pass unchanged.
func storeError(what, stream string, err error) error {
	switch {
	case errors.Is(err, eventstore.ErrWrongExpectedVersion), errors.Is(err, eventstore.ErrInvalidAppend):
		return err
	case errors.Is(err, ErrClosed):
		return fmt.Errorf("%s %q: %w: %w", what, stream, eventstore.ErrClosed, err)
	default:
		return fmt.Errorf("%s %q: %w", what, stream, err)
	}
}

// eventsBucket returns stream's events bucket, nil for an unknown stream.
func eventsBucket(tx *bolt.Tx, stream string) *bolt.Bucket {
	sb := streamBucket(tx, stream)
	if sb == nil {
		return nil
	}
	return sb.Bucket(bucketEvents)
}

// sequenceKey is the events bucket's key of sequence seq.
func sequenceKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

// lastSequence returns the last key of an events bucket, 0 when empty.
func lastSequence(c *bolt.Cursor) (uint64, error) {
	k, _ := c.Last()
	return sequenceOf(k)
}

// sequenceOf decodes an events bucket's key, 0 for nil (no key).
func sequenceOf(k []byte) (uint64, error) {
	switch {
	case k == nil:
		return 0, nil
	case len(k) != 8:
		return 0, fmt.Errorf("event key of %d bytes, want 8: %w", len(k), codec.ErrCorrupt)
	}
	return binary.BigEndian.Uint64(k), nil
}

// getEvent decodes the event with sequence seq of an events bucket.
func getEvent(evB *bolt.Bucket, seq uint64) (engine.Message, error) {
	v := evB.Get(sequenceKey(seq))
	if v == nil {
		return engine.Message{}, fmt.Errorf("sequence %d is indexed but not stored: %w", seq, codec.ErrCorrupt)
	}
	m, err := codec.DecodeMessage(v)
	if err != nil {
		return engine.Message{}, fmt.Errorf("sequence %d: %w", seq, err)
	}
	return m, nil
}
