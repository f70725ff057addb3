package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// appendTx is one Append's work inside the transaction it shares with the
// other writers of the moment, and its result. run checks everything that
// can fail before its first write, so a refusal costs the others nothing.
type appendTx struct {
	stream   string
	expected eventstore.ExpectedVersion
	events   []engine.Message
	// buf holds the bytes the append puts: bbolt copies keys but keeps the
	// value slices until the commit, so each value gets bytes of its own
	// (the ids bucket's value is the events key, hence that is in buf too).
	buf *[]byte // from bufferPool, until release

	// Found in the transaction by locate, classify and prepare.
	streams, meta *bolt.Bucket
	sb, evB, idB  *bolt.Bucket // nil for a new stream
	kB, kiB       *bolt.Bucket // nil until the stream's first keyed append
	keys          eventstore.KeyVersions
	version       uint64 // the stream's last sequence
	position      uint64 // the global position of the last event
	slots         []slot
	key           []byte // an id being looked up
	fresh         int    // how many events are new
	puts          []put  // the new events' writes

	res eventstore.AppendResult
}

// slot is what the checks found about one input event.
type slot struct {
	// stored is the sequence of the stream's event with the same ID, 0 if none.
	stored uint64
	// first is the index of an earlier input event with the same ID, -1 if none.
	first int
}

// put is one new event's writes: events[key] = val, ids[id] = key and,
// for a keyed event, bykey[keyIdx] = key.
type put struct {
	key, id, val, keyIdx []byte
}

// batchMapThreshold is the batch size above which repeated IDs are found
// with a map rather than by scanning the events before.
const batchMapThreshold = 16

func newAppendTx(stream string, expected eventstore.ExpectedVersion, events []engine.Message) *appendTx {
	hint := 0
	for i := range events {
		hint += recordSizeHint(&events[i], stream)
	}
	buf := getBuffer(hint)
	return &appendTx{stream: stream, expected: expected, events: events, buf: buf}
}

// release gives the buffer back once the commit is over.
func (a *appendTx) release() {
	putBuffer(a.buf)
	a.buf = nil
}

// run is the function DB.Update runs, maybe more than once: it starts
// afresh each time. A write that fails makes DB.Update roll the group back
// and run it again without this append.
func (a *appendTx) run(tx *bolt.Tx) error {
	a.res = eventstore.AppendResult{}
	*a.buf = (*a.buf)[:0]
	a.streams, a.meta = tx.Bucket(bucketStreams), tx.Bucket(bucketMeta)
	if err := a.locate(); err != nil {
		return err
	}
	if err := a.classify(); err != nil {
		return err
	}
	// The expected version binds only an append that adds something: when
	// every event is already stored, a retried append succeeds.
	if a.fresh > 0 && a.expected != eventstore.Any && uint64(a.expected) != a.version {
		return &eventstore.ConflictError{Stream: a.stream, Expected: a.expected, Actual: a.version}
	}
	out, err := a.prepare()
	if err != nil {
		return err
	}
	if a.fresh > 0 {
		if err := a.write(); err != nil {
			return err
		}
	}
	a.res = eventstore.AppendResult{Events: out, Appended: a.fresh, LastSequence: a.version}
	return nil
}

// locate finds the stream's buckets (nil for a new stream), its version
// and the global position.
func (a *appendTx) locate() error {
	a.sb, a.evB, a.idB, a.kB, a.kiB, a.version, a.position = nil, nil, nil, nil, nil, 0, a.meta.Sequence()
	sb := a.streams.Bucket([]byte(a.stream))
	if sb == nil {
		if a.streams.Get([]byte(a.stream)) != nil {
			return fmt.Errorf("stream %q is a value, not a bucket: %w", a.stream, codec.ErrCorrupt)
		}
		return nil
	}
	if a.evB, a.idB = sb.Bucket(bucketEvents), sb.Bucket(bucketIDs); a.evB == nil || a.idB == nil {
		return fmt.Errorf("stream %q lacks its events or ids bucket: %w", a.stream, codec.ErrCorrupt)
	}
	a.sb, a.kB, a.kiB = sb, sb.Bucket(bucketKeys), sb.Bucket(bucketKeyIndex)
	var err error
	if a.version, err = lastSequence(a.evB.Cursor()); err != nil {
		return fmt.Errorf("stream %q: %w", a.stream, err)
	}
	return nil
}

// classify finds, for each input event, an earlier one in the batch with
// its ID or the stored event with its ID, and counts the new ones.
func (a *appendTx) classify() error {
	a.slots, a.fresh = make([]slot, len(a.events)), 0
	var firstByID map[string]int
	if len(a.events) > batchMapThreshold {
		firstByID = make(map[string]int, len(a.events))
	}
	// One cursor for every lookup: a Get per event would make a cursor
	// each time, and grow its stack as it descends from the root.
	var ids *bolt.Cursor
	if a.idB != nil {
		ids = a.idB.Cursor()
	}
	for i := range a.events {
		id := a.events[i].ID
		a.slots[i].first = -1
		if firstByID != nil {
			if j, ok := firstByID[id]; ok {
				a.slots[i].first = j
				continue
			}
			firstByID[id] = i
		} else if j := slices.IndexFunc(a.events[:i], func(e engine.Message) bool { return e.ID == id }); j >= 0 {
			a.slots[i].first = j
			continue
		}
		if ids != nil {
			a.key = append(a.key[:0], id...)
			if k, v := ids.Seek(a.key); v != nil && bytes.Equal(k, a.key) {
				if len(v) != 8 {
					return fmt.Errorf("stream %q: id %q maps to %d bytes, want 8: %w", a.stream, id, len(v), codec.ErrCorrupt)
				}
				a.slots[i].stored = binary.BigEndian.Uint64(v)
				continue
			}
		}
		a.fresh++
	}
	return nil
}

// prepare builds the result events and the encoded puts of the new ones,
// numbering them on from the stream's version, the global position and
// their keys' versions; it writes nothing, so a key conflict it finds
// leaves the transaction as it was.
func (a *appendTx) prepare() ([]engine.Message, error) {
	out := make([]engine.Message, len(a.events))
	a.puts = make([]put, 0, a.fresh)
	a.keys = eventstore.NewKeyVersions(a.stream, func(key string) (uint64, error) { return keyVersion(a.kB, key) })
	now := time.Now()
	for i := range a.events {
		switch sl := a.slots[i]; {
		case sl.first >= 0:
			continue // filled below, once its first occurrence is
		case sl.stored > 0:
			m, err := getEvent(a.evB, sl.stored)
			if err != nil {
				return nil, fmt.Errorf("stream %q: %w", a.stream, err)
			}
			out[i] = m
			continue
		}
		v, err := a.keys.Next(&a.events[i])
		if err != nil {
			return nil, err
		}
		m := &out[i]
		*m = a.events[i]
		m.Version = v
		a.version++
		a.position++
		a.stamp(m, now)
		p := a.encode(m)
		if len(p.val) > bolt.MaxValueSize {
			return nil, fmt.Errorf("%w to stream %q: events[%d] (id %q) takes %d bytes, more than the disk store's %d",
				eventstore.ErrInvalidAppend, a.stream, i, m.ID, len(p.val), bolt.MaxValueSize)
		}
		a.puts = append(a.puts, p)
	}
	for i, sl := range a.slots {
		if sl.first >= 0 {
			out[i] = out[sl.first]
		}
	}
	return out, nil
}

// stamp gives a new event its place and time, as the store keeps it.
func (a *appendTx) stamp(m *engine.Message, now time.Time) {
	t := m.Time
	if t.IsZero() {
		t = now
	}
	m.Stream, m.Sequence, m.Position, m.Time, m.Value = a.stream, a.version, a.position, time.Unix(0, t.UnixNano()).UTC(), nil
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
func (a *appendTx) encode(m *engine.Message) put {
	b := *a.buf
	start := len(b)
	b = binary.BigEndian.AppendUint64(b, m.Sequence)
	b = append(b, m.ID...)
	b = codec.AppendMessage(b, m)
	idEnd, valEnd := start+8+len(m.ID), len(b)
	p := put{key: b[start : start+8 : start+8], id: b[start+8 : idEnd : idEnd], val: b[idEnd:valEnd:valEnd]}
	if m.Key != "" {
		b = keyIndexKey(b, m.Key, m.Version)
		p.keyIdx = b[valEnd:len(b):len(b)]
	}
	*a.buf = b
	return p
}

// write creates a new stream's buckets and puts the new events, their ids
// and the global position.
func (a *appendTx) write() error {
	if a.evB == nil {
		sb, err := a.streams.CreateBucket([]byte(a.stream))
		if err == nil {
			a.evB, err = sb.CreateBucket(bucketEvents)
		}
		if err == nil {
			a.idB, err = sb.CreateBucket(bucketIDs)
		}
		if err != nil {
			return fmt.Errorf("write stream %q: %w", a.stream, err)
		}
		a.sb = sb
	}
	a.evB.FillPercent = 1.0 // keys only grow: full pages, no half-empty splits
	if err := a.writeKeyVersions(); err != nil {
		return err
	}
	for _, p := range a.puts {
		if err := a.evB.Put(p.key, p.val); err != nil {
			return fmt.Errorf("write stream %q: %w", a.stream, err)
		}
		if err := a.idB.Put(p.id, p.key); err != nil {
			return fmt.Errorf("write stream %q: %w", a.stream, err)
		}
		if p.keyIdx != nil {
			if err := a.kiB.Put(p.keyIdx, p.key); err != nil {
				return fmt.Errorf("write stream %q: %w", a.stream, err)
			}
		}
	}
	if err := a.meta.SetSequence(a.position); err != nil {
		return fmt.Errorf("write stream %q: %w", a.stream, err)
	}
	return nil
}

// writeKeyVersions creates the stream's key buckets on its first keyed
// append and stores the new version of each key the append numbered.
func (a *appendTx) writeKeyVersions() error {
	versions := a.keys.Versions()
	if len(versions) == 0 {
		return nil
	}
	if a.kB == nil {
		var err error
		if a.kB, err = a.sb.CreateBucketIfNotExists(bucketKeys); err == nil {
			a.kiB, err = a.sb.CreateBucketIfNotExists(bucketKeyIndex)
		}
		if err != nil {
			return fmt.Errorf("write stream %q: %w", a.stream, err)
		}
	}
	for key, v := range versions {
		// The value's bytes must last until the commit: they go in buf.
		b := *a.buf
		start := len(b)
		b = binary.BigEndian.AppendUint64(b, v)
		*a.buf = b
		if err := a.kB.Put([]byte(key), b[start:len(b):len(b)]); err != nil {
			return fmt.Errorf("write stream %q: key %q: %w", a.stream, key, err)
		}
	}
	return nil
}

// recordSizeHint is an upper bound of the bytes an append to stream puts
// for m: its key, its id and its encoding.
func recordSizeHint(m *engine.Message, stream string) int {
	const v = binary.MaxVarintLen64
	// A keyed event adds its key and version to the encoding, its key index
	// entry (key length, key, version) and its key's new version.
	keyed := 2*len(m.Key) + 2 + 3*8 + v
	n := 8 + len(m.ID) + 1 + 6*v + keyed + len(m.ID) + len(m.Name) + len(stream) + len(m.CorrelationID) + len(m.CausationID) +
		len(m.ContentType) + 2*v + 1 + v + v + 1 + v + len(m.Payload)
	for k, val := range m.Headers {
		n += 2*v + len(k) + len(val)
	}
	return n
}

// bufferPool recycles append buffers: they are only needed until the
// commit, and an ingest flood would otherwise allocate one per append.
var bufferPool sync.Pool

// maxPooledBuffer keeps a rare huge append from pinning its buffer.
const maxPooledBuffer = 1 << 20

func getBuffer(size int) *[]byte {
	if b, ok := bufferPool.Get().(*[]byte); ok {
		if cap(*b) < size {
			*b = make([]byte, 0, size)
		}
		return b
	}
	b := make([]byte, 0, max(size, 4096))
	return &b
}

func putBuffer(b *[]byte) {
	if cap(*b) > maxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	bufferPool.Put(b)
}
