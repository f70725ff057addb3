package diskstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// esCompactBatch is how many events one transaction of a compaction
// removes at most: two deletes each (events and ids), so about 10k deletes
// per commit. A large compaction takes several commits, each shared with
// the appenders of the moment, rather than one huge one they wait behind.
const esCompactBatch = 5000

var _ eventstore.Compactor = (*EventStore)(nil)

// Compact removes the stream's events with a sequence below before, except
// the last one, with their ids entries, as eventstore.Compactor.Compact
// says. It deletes in transactions of at most esCompactBatch events; should
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
		var c esCompaction
		if err := s.db.Update(ctx, func(tx *bolt.Tx) error { return c.run(tx, stream, before) }); err != nil {
			return removed, esError("compact stream", stream, err)
		}
		removed += c.removed
		if !c.more {
			return removed, nil
		}
	}
}

// esCompaction is one transaction's share of a compaction and its result.
type esCompaction struct {
	removed int
	more    bool
}

// run deletes up to esCompactBatch of the stream's first events below
// before, never the last. DB.Update may run it more than once: it sets its
// result on every run.
func (c *esCompaction) run(tx *bolt.Tx, stream string, before uint64) error {
	c.removed, c.more = 0, false
	sb := tx.Bucket(bucketStreams).Bucket([]byte(stream))
	if sb == nil {
		return nil
	}
	evB, idB := sb.Bucket(esBucketEvents), sb.Bucket(esBucketIDs)
	if evB == nil || idB == nil {
		return fmt.Errorf("stream %q lacks its events or ids bucket: %w", stream, codec.ErrCorrupt)
	}
	cur := evB.Cursor()
	last, err := esLastSequence(cur)
	if err != nil {
		return fmt.Errorf("stream %q: %w", stream, err)
	}
	end := min(before, last) // the last event stays, so the version does
	// Gather first, delete second: a bbolt cursor does not survive deletes
	// under it, and its keys and values are only valid until the first
	// write, hence the copies.
	var keys, ids [][]byte
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if len(k) != 8 {
			return fmt.Errorf("stream %q: event key of %d bytes, want 8: %w", stream, len(k), codec.ErrCorrupt)
		}
		if binary.BigEndian.Uint64(k) >= end {
			break
		}
		if len(keys) == esCompactBatch {
			c.more = true
			break
		}
		id, err := codec.MessageID(v)
		if err != nil {
			return fmt.Errorf("stream %q: sequence %d: %w", stream, binary.BigEndian.Uint64(k), err)
		}
		keys = append(keys, bytes.Clone(k))
		ids = append(ids, bytes.Clone(id))
	}
	for i, k := range keys {
		if err := evB.Delete(k); err != nil {
			return fmt.Errorf("compact stream %q: %w", stream, err)
		}
		// The id is forgotten with its event (see eventstore.Compactor).
		if bytes.Equal(idB.Get(ids[i]), k) {
			if err := idB.Delete(ids[i]); err != nil {
				return fmt.Errorf("compact stream %q: %w", stream, err)
			}
		}
	}
	c.removed = len(keys)
	return nil
}

// First returns the stream's first retained sequence, 0 for a stream
// without events.
func (s *EventStore) First(ctx context.Context, stream string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("first sequence of stream %q: %w", stream, err)
	}
	if s.closed() {
		return 0, eventstore.ErrClosed
	}
	var first uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		evB := esEvents(tx, stream)
		if evB == nil {
			return nil
		}
		k, _ := evB.Cursor().First()
		switch {
		case k == nil:
			return nil
		case len(k) != 8:
			return fmt.Errorf("event key of %d bytes, want 8: %w", len(k), codec.ErrCorrupt)
		}
		first = binary.BigEndian.Uint64(k)
		return nil
	})
	if err != nil {
		return 0, esError("first sequence of stream", stream, err)
	}
	return first, nil
}
