package diskstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// Bucket names inside each streams/<stream> bucket.
var (
	esBucketEvents = []byte("events")
	esBucketIDs    = []byte("ids")
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
// Sequence, Position and Time set and Value dropped: they share Headers and
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
	if err := esValidateKeys(stream, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if s.closed() {
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	if len(events) == 0 {
		v, err := s.Version(ctx, stream)
		return eventstore.AppendResult{Events: []engine.Message{}, LastSequence: v}, err
	}

	a := esAppend{stream: stream, expected: expected, events: events}
	hint := 0
	for i := range events {
		hint += esRecordSizeHint(&events[i], stream)
	}
	buf := esGetBuffer(hint)
	a.buf = (*buf)[:0]
	err := s.db.Update(ctx, a.run)
	// The commit is over, whatever its outcome: bbolt no longer holds the
	// buffer's bytes, so the next append may reuse them.
	*buf = a.buf
	esPutBuffer(buf)
	if err != nil {
		return eventstore.AppendResult{}, esError("append to stream", stream, err)
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

// esValidateKeys rejects what bbolt would refuse as a key, before anything
// is written: a Put that fails halfway would leave part of an append in the
// transaction the other writers share.
func esValidateKeys(stream string, events []engine.Message) error {
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

// esAppend is one Append's work inside the shared transaction and its result.
type esAppend struct {
	stream   string
	expected eventstore.ExpectedVersion
	events   []engine.Message
	// buf holds the bytes the append puts: bbolt copies keys but keeps the
	// value slices until the commit, so each value gets bytes of its own
	// (the ids bucket's value is the events key, hence that is in buf too).
	buf []byte
	res eventstore.AppendResult
}

// esSlot is what the checks found about one input event.
type esSlot struct {
	// stored is the sequence of the stream's event with the same ID, 0 if none.
	stored uint64
	// first is the index of an earlier input event with the same ID, -1 if none.
	first int
}

// esPut is one new event's writes: events[key] = val and ids[id] = key.
type esPut struct {
	key, id, val []byte
}

// esBatchMapThreshold is the batch size above which repeated IDs are found
// with a map rather than by scanning the events before.
const esBatchMapThreshold = 16

// run is the function DB.Update runs. It checks everything that can fail
// before its first write, so refusals cost the writers sharing the
// transaction nothing; a write that fails anyway makes DB.Update roll the
// group back and run it again without this append.
func (a *esAppend) run(tx *bolt.Tx) error {
	streams, meta := tx.Bucket(bucketStreams), tx.Bucket(bucketMeta)
	name := []byte(a.stream)
	sb, evB, idB, version, err := a.locate(streams, name)
	if err != nil {
		return err
	}
	slots, fresh, err := a.classify(idB)
	if err != nil {
		return err
	}
	// The expected version binds only an append that adds something: when
	// every event is already stored, a retried append succeeds.
	if fresh > 0 && a.expected != eventstore.Any && uint64(a.expected) != version {
		return &eventstore.ConflictError{Stream: a.stream, Expected: a.expected, Actual: version}
	}
	out, puts, version, position, err := a.prepare(evB, slots, fresh, version, meta.Sequence())
	if err != nil {
		return err
	}
	a.res = eventstore.AppendResult{Events: out, Appended: fresh, LastSequence: version}
	if fresh == 0 {
		return nil
	}
	// Writes from here on.
	created := sb == nil
	if err := a.write(streams, meta, name, created, evB, idB, puts, position); err != nil {
		a.res = eventstore.AppendResult{}
		return err
	}
	return nil
}

// locate finds the stream's buckets (nil for a new stream) and its version.
func (a *esAppend) locate(streams *bolt.Bucket, name []byte) (sb, evB, idB *bolt.Bucket, version uint64, err error) {
	sb = streams.Bucket(name)
	if sb == nil {
		if streams.Get(name) != nil {
			return nil, nil, nil, 0, fmt.Errorf("stream %q is a value, not a bucket: %w", a.stream, codec.ErrCorrupt)
		}
		return nil, nil, nil, 0, nil
	}
	if evB, idB = sb.Bucket(esBucketEvents), sb.Bucket(esBucketIDs); evB == nil || idB == nil {
		return nil, nil, nil, 0, fmt.Errorf("stream %q lacks its events or ids bucket: %w", a.stream, codec.ErrCorrupt)
	}
	if version, err = esLastSequence(evB.Cursor()); err != nil {
		return nil, nil, nil, 0, fmt.Errorf("stream %q: %w", a.stream, err)
	}
	return sb, evB, idB, version, nil
}

// classify finds, for each input event, an earlier one in the batch with
// its ID or the stored event with its ID, and counts the new ones.
func (a *esAppend) classify(idB *bolt.Bucket) ([]esSlot, int, error) {
	slots := make([]esSlot, len(a.events))
	var firstByID map[string]int
	if len(a.events) > esBatchMapThreshold {
		firstByID = make(map[string]int, len(a.events))
	}
	fresh := 0
	for i := range a.events {
		id := a.events[i].ID
		slots[i].first = -1
		if firstByID != nil {
			if j, ok := firstByID[id]; ok {
				slots[i].first = j
				continue
			}
			firstByID[id] = i
		} else if j := slices.IndexFunc(a.events[:i], func(e engine.Message) bool { return e.ID == id }); j >= 0 {
			slots[i].first = j
			continue
		}
		if idB != nil {
			if v := idB.Get([]byte(id)); v != nil {
				if len(v) != 8 {
					return nil, 0, fmt.Errorf("stream %q: id %q maps to %d bytes, want 8: %w", a.stream, id, len(v), codec.ErrCorrupt)
				}
				slots[i].stored = binary.BigEndian.Uint64(v)
				continue
			}
		}
		fresh++
	}
	return slots, fresh, nil
}

// prepare builds the result events and the encoded puts of the new ones,
// numbering them from version and position; it writes nothing.
func (a *esAppend) prepare(evB *bolt.Bucket, slots []esSlot, fresh int, version, position uint64,
) ([]engine.Message, []esPut, uint64, uint64, error) {
	out := make([]engine.Message, len(a.events))
	puts := make([]esPut, 0, fresh)
	now := time.Now()
	for i := range a.events {
		switch sl := slots[i]; {
		case sl.first >= 0:
			continue // filled below, once its first occurrence is
		case sl.stored > 0:
			m, err := esGet(evB, sl.stored)
			if err != nil {
				return nil, nil, 0, 0, fmt.Errorf("stream %q: %w", a.stream, err)
			}
			out[i] = m
			continue
		}
		m := &out[i]
		*m = a.events[i]
		version++
		position++
		a.stamp(m, version, position, now)
		p := a.encode(m)
		if len(p.val) > bolt.MaxValueSize {
			return nil, nil, 0, 0, fmt.Errorf("%w to stream %q: events[%d] (id %q) takes %d bytes, more than the disk store's %d",
				eventstore.ErrInvalidAppend, a.stream, i, m.ID, len(p.val), bolt.MaxValueSize)
		}
		puts = append(puts, p)
	}
	for i, sl := range slots {
		if sl.first >= 0 {
			out[i] = out[sl.first]
		}
	}
	return out, puts, version, position, nil
}

// stamp gives a new event its place and time, as the store keeps it.
func (a *esAppend) stamp(m *engine.Message, version, position uint64, now time.Time) {
	t := m.Time
	if t.IsZero() {
		t = now
	}
	m.Stream, m.Sequence, m.Position, m.Time, m.Value = a.stream, version, position, time.Unix(0, t.UnixNano()).UTC(), nil
	if len(m.Headers) == 0 {
		m.Headers = nil
	}
	if len(m.Payload) == 0 {
		m.Payload = nil
	}
}

// encode lays key, id and value side by side in buf, sliced once they are
// in; should buf reallocate later, the slices keep the old array, which
// nothing changes.
func (a *esAppend) encode(m *engine.Message) esPut {
	start := len(a.buf)
	a.buf = binary.BigEndian.AppendUint64(a.buf, m.Sequence)
	a.buf = append(a.buf, m.ID...)
	a.buf = codec.AppendMessage(a.buf, m)
	idEnd := start + 8 + len(m.ID)
	return esPut{key: a.buf[start : start+8 : start+8], id: a.buf[start+8 : idEnd : idEnd], val: a.buf[idEnd:len(a.buf):len(a.buf)]}
}

// write creates a new stream's buckets and puts the new events and their
// ids; should a write fail, the group is rolled back (DB.Update).
func (a *esAppend) write(
	streams, meta *bolt.Bucket, name []byte, created bool, evB, idB *bolt.Bucket, puts []esPut, position uint64,
) error {
	var err error
	if created {
		sb, err := streams.CreateBucket(name)
		if err != nil {
			return fmt.Errorf("write stream %q: %w", a.stream, err)
		}
		if evB, err = sb.CreateBucket(esBucketEvents); err != nil {
			return fmt.Errorf("write stream %q: %w", a.stream, err)
		}
		if idB, err = sb.CreateBucket(esBucketIDs); err != nil {
			return fmt.Errorf("write stream %q: %w", a.stream, err)
		}
	}
	evB.FillPercent = 1.0 // keys only grow: full pages, no half-empty splits
	for _, p := range puts {
		if err = evB.Put(p.key, p.val); err != nil {
			return fmt.Errorf("write stream %q: %w", a.stream, err)
		}
		if err = idB.Put(p.id, p.key); err != nil {
			return fmt.Errorf("write stream %q: %w", a.stream, err)
		}
	}
	if err = meta.SetSequence(position); err != nil {
		return fmt.Errorf("write stream %q: %w", a.stream, err)
	}
	return nil
}

// esRecordSizeHint is an upper bound of the bytes an append to stream puts
// for m: its key, its id and its encoding.
func esRecordSizeHint(m *engine.Message, stream string) int {
	const v = binary.MaxVarintLen64
	n := 8 + len(m.ID) + 1 + 6*v + len(m.ID) + len(m.Name) + len(stream) + len(m.CorrelationID) + len(m.CausationID) +
		len(m.ContentType) + 2*v + 1 + v + v + 1 + v + len(m.Payload)
	for k, val := range m.Headers {
		n += 2*v + len(k) + len(val)
	}
	return n
}

// esBufferPool recycles append buffers: they are only needed until the
// commit, and an ingest flood would otherwise allocate one per append.
var esBufferPool sync.Pool

// esMaxPooledBuffer keeps a rare huge append from pinning its buffer.
const esMaxPooledBuffer = 1 << 20

func esGetBuffer(size int) *[]byte {
	if b, ok := esBufferPool.Get().(*[]byte); ok {
		if cap(*b) < size {
			*b = make([]byte, 0, size)
		}
		return b
	}
	b := make([]byte, 0, max(size, 4096))
	return &b
}

func esPutBuffer(b *[]byte) {
	if cap(*b) > esMaxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	esBufferPool.Put(b)
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
		return nil, esError("read stream", stream, err)
	}
	return events, nil
}

// read reads in one read-only transaction; decodeMessage copies every
// event out of bbolt's memory, which is only valid inside it.
func (s *EventStore) read(stream string, after uint64, limit int) ([]engine.Message, error) {
	if after == math.MaxUint64 {
		return nil, nil
	}
	var out []engine.Message
	err := s.db.View(func(tx *bolt.Tx) error {
		evB := esEvents(tx, stream)
		if evB == nil {
			return nil
		}
		c := evB.Cursor()
		last, err := esLastSequence(c)
		if err != nil || after >= last {
			return err
		}
		out = make([]engine.Message, 0, min(uint64(limit), last-after))
		var from [8]byte
		binary.BigEndian.PutUint64(from[:], after+1)
		for k, v := c.Seek(from[:]); k != nil && len(out) < limit; k, v = c.Next() {
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
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("version of stream %q: %w", stream, err)
	}
	if s.closed() {
		return 0, eventstore.ErrClosed
	}
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		evB := esEvents(tx, stream)
		if evB == nil {
			return nil
		}
		var err error
		v, err = esLastSequence(evB.Cursor())
		return err
	})
	if err != nil {
		return 0, esError("version of stream", stream, err)
	}
	return v, nil
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
	return &esSubscription{store: s, stream: stream, after: after, done: make(chan struct{})}, nil
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

// esError adds what failed to err, and makes the DB's ErrClosed an
// eventstore.ErrClosed too. The eventstore package's own errors (conflict,
// invalid append) already say what failed and pass unchanged.
func esError(what, stream string, err error) error {
	var conflict *eventstore.ConflictError
	switch {
	case errors.As(err, &conflict), errors.Is(err, eventstore.ErrInvalidAppend):
		return err
	case errors.Is(err, ErrClosed):
		return fmt.Errorf("%s %q: %w: %w", what, stream, eventstore.ErrClosed, err)
	default:
		return fmt.Errorf("%s %q: %w", what, stream, err)
	}
}

// esEvents returns stream's events bucket, nil for an unknown stream.
func esEvents(tx *bolt.Tx, stream string) *bolt.Bucket {
	sb := tx.Bucket(bucketStreams).Bucket([]byte(stream))
	if sb == nil {
		return nil
	}
	return sb.Bucket(esBucketEvents)
}

// esLastSequence returns the last key of an events bucket, 0 when empty.
func esLastSequence(c *bolt.Cursor) (uint64, error) {
	k, _ := c.Last()
	switch {
	case k == nil:
		return 0, nil
	case len(k) != 8:
		return 0, fmt.Errorf("event key of %d bytes, want 8: %w", len(k), codec.ErrCorrupt)
	}
	return binary.BigEndian.Uint64(k), nil
}

// esGet decodes the event with sequence seq of an events bucket.
func esGet(evB *bolt.Bucket, seq uint64) (engine.Message, error) {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	v := evB.Get(k[:])
	if v == nil {
		return engine.Message{}, fmt.Errorf("sequence %d is indexed but not stored: %w", seq, codec.ErrCorrupt)
	}
	m, err := codec.DecodeMessage(v)
	if err != nil {
		return engine.Message{}, fmt.Errorf("sequence %d: %w", seq, err)
	}
	return m, nil
}
