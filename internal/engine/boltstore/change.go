package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// The first byte of a stored value that is not a list says what it holds.
const (
	tagNull    = 'z' // null: an append or increment starts afresh
	tagNilList = 'l' // a nil []any set with OpSet: renders null, but is a list
	tagInt     = 'i' // int64, 8 bytes big-endian
	tagFloat   = 'f' // float64 bits, 8 bytes big-endian
	tagJSON    = 'j' // JSON text: a string, bool, object or anything else
)

// change is a readmodel.Change encoded before the transaction, so that
// nothing that can fail on the value runs after the first write.
type change struct {
	key   []byte // prefixed (storedName)
	op    readmodel.Op
	value []byte   // OpSet of anything but a non-nil []any: tagged; OpAppend: the item's JSON
	items [][]byte // OpSet of a non-nil []any: each item's JSON
	delta int64
}

// namePrefix leads every stored name: bbolt keys cannot be empty, names can.
const namePrefix = '.'

// storedName prefixes name for use as a bbolt key.
func storedName(name string) ([]byte, error) {
	if len(name)+1 > bolt.MaxKeySize {
		return nil, fmt.Errorf("name of %d bytes is longer than the %d bytes the disk store allows", len(name), bolt.MaxKeySize-1)
	}
	b := make([]byte, 1+len(name))
	b[0] = namePrefix
	copy(b[1:], name)
	return b, nil
}

// appendJSON is readmodel.AppendJSON, refusing what bbolt would not store.
func appendJSON(dst []byte, v any) ([]byte, error) {
	start := len(dst)
	out, err := readmodel.AppendJSON(dst, v)
	if err != nil {
		return out, err
	}
	return checkValueSize(out, start)
}

// checkValueSize refuses a value, b[start:], that bbolt would not store.
func checkValueSize(b []byte, start int) ([]byte, error) {
	if n := len(b) - start; int64(n) > bolt.MaxValueSize {
		return b[:start], fmt.Errorf("value of %d bytes encoded is larger than the %d bytes the disk store allows", n, bolt.MaxValueSize)
	}
	return b, nil
}

// appendTagged appends a number's stored value to dst.
func appendTagged(dst []byte, tag byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tag), n)
}

// encodeSizeHint is about the bytes encodeChanges puts in its buffer for
// changes: exact for raw JSON text without spaces, numbers and appends of
// them, a guess for other values.
func encodeSizeHint(changes []readmodel.Change) int {
	n := 0
	for i := range changes {
		n += 1 + len(changes[i].Key) + 9
		switch v := changes[i].Value.(type) {
		case json.RawMessage:
			n += len(v)
		case string:
			n += len(v) + 2
		case nil, int64, int, float64:
		default:
			n += 64
		}
	}
	return n
}

// encodeChanges encodes changes into out, which it returns, their keys and
// values laid side by side in buf (sized by encodeSizeHint, so that one
// allocation holds them all). Should buf grow, the slices taken before
// keep the old array, which nothing changes. An error names the change.
func encodeChanges(out []change, buf []byte, changes []readmodel.Change) ([]change, error) {
	for i, c := range changes {
		if len(c.Key)+1 > bolt.MaxKeySize {
			return nil, fmt.Errorf("change %d: key: name of %d bytes is longer than the %d bytes the disk store allows",
				i, len(c.Key), bolt.MaxKeySize-1)
		}
		start := len(buf)
		buf = append(append(buf, namePrefix), c.Key...)
		e := change{key: buf[start:len(buf):len(buf)], op: c.Op, delta: c.Delta}
		start = len(buf)
		var err error
		switch c.Op {
		case readmodel.OpSet:
			if buf, err = e.encodeSet(buf, c.Value); err != nil {
				return nil, fmt.Errorf("change %d: set key %q: %w", i, c.Key, err)
			}
		case readmodel.OpAppend:
			if buf, err = appendJSON(buf, c.Value); err != nil {
				return nil, fmt.Errorf("change %d: append to key %q: %w", i, c.Key, err)
			}
		case readmodel.OpIncrement:
		default:
			return nil, fmt.Errorf("change %d: key %q: unknown op %d", i, c.Key, c.Op)
		}
		if e.items == nil && len(buf) > start {
			e.value = buf[start:len(buf):len(buf)]
		}
		out = append(out, e)
	}
	return out, nil
}

// encodeSet appends the stored value of an OpSet to buf, by its
// readmodel.KindOf: a json.RawMessage is JSON text whatever it holds, as in
// the memory store. A non-nil []any is a list: its items' JSON goes in
// c.items instead.
func (c *change) encodeSet(buf []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(buf, tagNull), nil
	case []any:
		if v == nil {
			return append(buf, tagNilList), nil
		}
		c.items = make([][]byte, len(v))
		for i, item := range v {
			b, err := appendJSON(nil, item)
			if err != nil {
				return buf, fmt.Errorf("item %d: %w", i, err)
			}
			c.items[i] = b
		}
		return buf, nil
	case int64:
		return appendTagged(buf, tagInt, uint64(v)), nil
	case int:
		return appendTagged(buf, tagInt, uint64(int64(v))), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return buf, fmt.Errorf("%v cannot be encoded as JSON", v)
		}
		return appendTagged(buf, tagFloat, math.Float64bits(v)), nil
	default:
		return appendJSON(append(buf, tagJSON), v)
	}
}

// storedKind is the kind of the value under key in doc (nil: none yet).
func storedKind(doc *bolt.Bucket, key []byte) (readmodel.Kind, error) {
	if doc == nil {
		return readmodel.KindMissing, nil
	}
	if v := doc.Get(key); v != nil {
		if len(v) == 0 {
			return 0, fmt.Errorf("key %q: %w: empty value", key[1:], codec.ErrCorrupt)
		}
		switch v[0] {
		case tagNull:
			return readmodel.KindMissing, nil
		case tagNilList:
			return readmodel.KindList, nil
		case tagInt, tagFloat:
			if len(v) != 9 {
				return 0, fmt.Errorf("key %q: %w: number of %d bytes", key[1:], codec.ErrCorrupt, len(v))
			}
			return readmodel.KindNumber, nil
		case tagJSON:
			return readmodel.KindOther, nil
		default:
			return 0, fmt.Errorf("key %q: %w: value tag %q", key[1:], codec.ErrCorrupt, v[0])
		}
	}
	if doc.Bucket(key) != nil {
		return readmodel.KindList, nil
	}
	return readmodel.KindMissing, nil
}
