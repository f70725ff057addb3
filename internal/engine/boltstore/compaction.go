package boltstore

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// compactBatch is how many events one transaction of a compaction removes
// at most: two or three deletes each (events, ids, key index), so at most
// about 15k deletes per commit. A large compaction takes several commits, each shared with the
// appenders of the moment, rather than one huge one they wait behind.
const compactBatch = 5000

var _ eventstore.Compactor = (*EventStore)(nil)

// Compact removes the stream's events with a sequence below before, except
// the last one, with their ids and key index entries, as eventstore.Compactor.Compact
// says. It deletes in transactions of at most compactBatch events; should
// it fail part way, the events it removed before stay removed and calling
// it again finishes the work. The file does not shrink: bbolt reuses the
// freed pages for later appends.
func (s *EventStore) Compact(ctx context.Context, stream string, before uint64) (int, error) {
	removed := 0
	for {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("compact stream %q: %w", stream, err)
		}
		if s.closed() {
			return removed, eventstore.ErrClosed
		}
		c := compaction{stream: stream, before: before}
		if err := s.db.Update(ctx, c.run); err != nil {
			return removed, storeError("compact stream", stream, err)
		}
		removed += c.removed
		if !c.more {
			return removed, nil
		}
	}
}

// compaction is one transaction's share of a compaction and its result.
type compaction struct {
	stream  string
	before  uint64
	removed int
	more    bool // events below before are left for the next transaction
}

// run deletes up to compactBatch of the stream's first events below
// before, never the last. DB.Update may run it more than once: it sets its
// result on every run.
func (c *compaction) run(tx *bolt.Tx) error {
	c.removed, c.more = 0, false
	sb := tx.Bucket(bucketStreams).Bucket([]byte(c.stream))
	if sb == nil {
		return nil
	}
	evB, idB := sb.Bucket(bucketEvents), sb.Bucket(bucketIDs)
	if evB == nil || idB == nil {
		return fmt.Errorf("stream %q lacks its events or ids bucket: %w", c.stream, codec.ErrCorrupt)
	}
	keys, ids, keyIdx, err := c.gather(evB.Cursor())
	if err != nil {
		return err
	}
	kiB := sb.Bucket(bucketKeyIndex)
	for i, k := range keys {
		if err := evB.Delete(k); err != nil {
			return fmt.Errorf("compact stream %q: %w", c.stream, err)
		}
		// The id is forgotten with its event (see eventstore.Compactor).
		if err := deleteIfMapsTo(idB, ids[i], k); err != nil {
			return fmt.Errorf("compact stream %q: %w", c.stream, err)
		}
		// So is its key index entry; the key's version stays in keys.
		if keyIdx[i] != nil && kiB != nil {
			if err := deleteIfMapsTo(kiB, keyIdx[i], k); err != nil {
				return fmt.Errorf("compact stream %q: %w", c.stream, err)
			}
		}
	}
	c.removed = len(keys)
	return nil
}

// deleteIfMapsTo deletes b[k] when it is v: an entry that maps to another
// event is not the compacted event's.
func deleteIfMapsTo(b *bolt.Bucket, k, v []byte) error {
	if !bytes.Equal(b.Get(k), v) {
		return nil
	}
	return b.Delete(k)
}

// gather returns the keys, ids and key index entries (nil for unkeyed
// events) of the events to delete. Gather first, delete second: a bbolt
// cursor does not survive deletes under it, and its keys and values are
// only valid until the first write, hence the copies.
func (c *compaction) gather(cur *bolt.Cursor) (keys, ids, keyIdx [][]byte, err error) {
	last, err := lastSequence(cur)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("stream %q: %w", c.stream, err)
	}
	end := min(c.before, last) // the last event stays, so the version does
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		seq, err := sequenceOf(k)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("stream %q: %w", c.stream, err)
		}
		if seq >= end {
			break
		}
		if len(keys) == compactBatch {
			c.more = true
			break
		}
		id, err := codec.MessageID(v)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("stream %q: sequence %d: %w", c.stream, seq, err)
		}
		key, version, err := codec.MessageKey(v)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("stream %q: sequence %d: %w", c.stream, seq, err)
		}
		var idx []byte
		if len(key) > 0 {
			idx = keyIndexKey(nil, string(key), version)
		}
		keys = append(keys, bytes.Clone(k))
		ids = append(ids, bytes.Clone(id))
		keyIdx = append(keyIdx, idx)
	}
	return keys, ids, keyIdx, nil
}

// First returns the stream's first retained sequence, 0 for a stream
// without events.
func (s *EventStore) First(ctx context.Context, stream string) (uint64, error) {
	return s.edge(ctx, "first sequence of stream", stream, (*bolt.Cursor).First)
}
