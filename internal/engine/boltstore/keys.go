package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// Bucket names inside each streams/<stream> bucket for keyed events, made
// by the stream's first keyed append.
var (
	// bucketKeys: key -> its version (8 bytes, big-endian). Compaction
	// leaves it, so a version is never reused.
	bucketKeys = []byte("keys")
	// bucketKeyIndex: keyPrefix(key) + version (8 bytes, big-endian) ->
	// sequence, one entry per retained keyed event: a key's events are one
	// run of the bucket, in version order.
	bucketKeyIndex = []byte("bykey")
)

// keyPrefix is what every key index entry of key starts with: the key's
// length (2 bytes, big-endian) then the key. The length makes no key's
// prefix the start of another's ("a" and "ab" differ in their first bytes).
func keyPrefix(dst []byte, key string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(key)))
	return append(dst, key...)
}

// keyIndexKey is the key index entry of key's event with version v.
func keyIndexKey(dst []byte, key string, v uint64) []byte {
	return binary.BigEndian.AppendUint64(keyPrefix(dst, key), v)
}

// keyVersion returns key's version from a keys bucket, nil meaning none.
func keyVersion(kB *bolt.Bucket, key string) (uint64, error) {
	if kB == nil || key == "" {
		return 0, nil
	}
	v := kB.Get([]byte(key))
	switch {
	case v == nil:
		return 0, nil
	case len(v) != 8:
		return 0, fmt.Errorf("key %q has a version of %d bytes, want 8: %w", key, len(v), codec.ErrCorrupt)
	}
	return binary.BigEndian.Uint64(v), nil
}

// streamBucket returns stream's bucket, nil for an unknown stream.
func streamBucket(tx *bolt.Tx, stream string) *bolt.Bucket {
	return tx.Bucket(bucketStreams).Bucket([]byte(stream))
}

// ReadKey returns up to limit events of key in stream after the given
// version, in order; a limit of zero or less means
// eventstore.DefaultReadLimit. It seeks the key's run of the key index and
// reads each event by its sequence, so it costs the key's events and a few
// B+tree levels whatever the stream holds.
func (s *EventStore) ReadKey(ctx context.Context, stream, key string, after uint64, limit int) ([]engine.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read key %q of stream %q: %w", key, stream, err)
	}
	if s.closed() {
		return nil, eventstore.ErrClosed
	}
	if limit <= 0 {
		limit = eventstore.DefaultReadLimit
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	var out []engine.Message
	err := s.db.View(func(tx *bolt.Tx) error {
		sb := streamBucket(tx, stream)
		if sb == nil || key == "" || len(key) > eventstore.MaxKeyLen {
			return nil
		}
		kiB, evB := sb.Bucket(bucketKeyIndex), sb.Bucket(bucketEvents)
		if kiB == nil || evB == nil {
			return nil
		}
		prefix := keyPrefix(nil, key)
		c := kiB.Cursor()
		for k, v := c.Seek(keyIndexKey(nil, key, after+1)); k != nil && len(out) < limit && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			seq, err := sequenceOf(v)
			if err != nil || len(k) != len(prefix)+8 {
				return fmt.Errorf("key index entry %x: %w", k, codec.ErrCorrupt)
			}
			m, err := getEvent(evB, seq)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, storeError("read key of stream", stream, err)
	}
	return out, nil
}

// KeyVersion returns the key's version in stream, 0 when it has no event.
func (s *EventStore) KeyVersion(ctx context.Context, stream, key string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("version of key %q of stream %q: %w", key, stream, err)
	}
	if s.closed() {
		return 0, eventstore.ErrClosed
	}
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		sb := streamBucket(tx, stream)
		if sb == nil || len(key) > eventstore.MaxKeyLen {
			return nil
		}
		var err error
		v, err = keyVersion(sb.Bucket(bucketKeys), key)
		return err
	})
	if err != nil {
		return 0, storeError("version of a key of stream", stream, err)
	}
	return v, nil
}

// Lookup returns the retained event of stream with that ID, through the
// ids bucket that makes appends idempotent.
func (s *EventStore) Lookup(ctx context.Context, stream, id string) (engine.Message, bool, error) {
	found, err := s.LookupMany(ctx, stream, []string{id})
	if err != nil {
		return engine.Message{}, false, err
	}
	m, ok := found[id]
	return m, ok, nil
}

// LookupMany returns the retained events of stream among ids, by ID, in one
// read transaction (versions.ManyLookup): ingest asks about every ID of a
// batch that brought its own.
func (s *EventStore) LookupMany(ctx context.Context, stream string, ids []string) (map[string]engine.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("look up ids in stream %q: %w", stream, err)
	}
	if s.closed() {
		return nil, eventstore.ErrClosed
	}
	found := make(map[string]engine.Message)
	err := s.db.View(func(tx *bolt.Tx) error {
		sb := streamBucket(tx, stream)
		if sb == nil {
			return nil
		}
		idB, evB := sb.Bucket(bucketIDs), sb.Bucket(bucketEvents)
		if idB == nil || evB == nil {
			return fmt.Errorf("stream %q lacks its events or ids bucket: %w", stream, codec.ErrCorrupt)
		}
		for _, id := range ids {
			if id == "" || len(id) > bolt.MaxKeySize {
				continue
			}
			v := idB.Get([]byte(id))
			if v == nil {
				continue
			}
			seq, err := sequenceOf(v)
			if err != nil {
				return err
			}
			m, err := getEvent(evB, seq)
			if err != nil {
				return err
			}
			found[id] = m
		}
		return nil
	})
	if err != nil {
		return nil, storeError("look up ids in stream", stream, err)
	}
	return found, nil
}
