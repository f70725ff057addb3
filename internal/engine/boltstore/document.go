package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
)

// appendDocument renders doc onto out as the memory store renders a
// document (json.Marshal of the map). bbolt orders keys as bytes, which is
// the order json.Marshal gives a map's keys.
func appendDocument(out []byte, doc *bolt.Bucket) ([]byte, error) {
	out = append(out, '{')
	c := doc.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(out) > 1 {
			out = append(out, ',')
		}
		key, err := json.Marshal(string(k[1:]))
		if err != nil {
			return nil, err
		}
		out = append(out, key...)
		out = append(out, ':')
		if v == nil {
			out, err = appendList(out, doc.Bucket(k))
		} else {
			out, err = appendValue(out, k, v)
		}
		if err != nil {
			return nil, err
		}
	}
	return append(out, '}'), nil
}

// appendList renders a list bucket: its items are JSON text already.
func appendList(out []byte, items *bolt.Bucket) ([]byte, error) {
	out = append(out, '[')
	first := true
	err := items.ForEach(func(_, item []byte) error {
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, item...)
		return nil
	})
	return append(out, ']'), err
}

// appendValue renders the tagged value v stored under key k.
func appendValue(out, k, v []byte) ([]byte, error) {
	if len(v) == 0 || (v[0] == tagInt || v[0] == tagFloat) && len(v) != 9 {
		return nil, fmt.Errorf("key %q: %w: value of %d bytes", k[1:], codec.ErrCorrupt, len(v))
	}
	switch v[0] {
	case tagNull, tagNilList:
		return append(out, "null"...), nil
	case tagInt:
		return strconv.AppendInt(out, int64(binary.BigEndian.Uint64(v[1:])), 10), nil
	case tagFloat:
		// json.Marshal's own float format; a stored float is finite.
		f, err := json.Marshal(math.Float64frombits(binary.BigEndian.Uint64(v[1:])))
		return append(out, f...), err
	case tagJSON:
		return append(out, v[1:]...), nil
	default:
		return nil, fmt.Errorf("key %q: %w: value tag %q", k[1:], codec.ErrCorrupt, v[0])
	}
}
