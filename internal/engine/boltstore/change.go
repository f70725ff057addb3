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

// marshalJSON encodes v as json.Marshal does, so documents match the memory
// store's (which escapes HTML characters and compacts raw JSON text).
func marshalJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > bolt.MaxValueSize {
		return nil, fmt.Errorf("value of %d bytes encoded is larger than the %d bytes the disk store allows", len(b), bolt.MaxValueSize)
	}
	return b, nil
}

// tagged is a number's stored value.
func tagged(tag byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 9), tag), n)
}

// encodeChanges encodes changes. An error names the change.
func encodeChanges(changes []readmodel.Change) ([]change, error) {
	out := make([]change, len(changes))
	for i, c := range changes {
		key, err := storedName(c.Key)
		if err != nil {
			return nil, fmt.Errorf("change %d: key: %w", i, err)
		}
		e := change{key: key, op: c.Op, delta: c.Delta}
		switch c.Op {
		case readmodel.OpSet:
			if err := e.encodeSet(c.Value); err != nil {
				return nil, fmt.Errorf("change %d: set key %q: %w", i, c.Key, err)
			}
		case readmodel.OpAppend:
			if e.value, err = marshalJSON(c.Value); err != nil {
				return nil, fmt.Errorf("change %d: append to key %q: %w", i, c.Key, err)
			}
		case readmodel.OpIncrement:
		default:
			return nil, fmt.Errorf("change %d: key %q: unknown op %d", i, c.Key, c.Op)
		}
		out[i] = e
	}
	return out, nil
}

// encodeSet encodes the value of an OpSet by its readmodel.KindOf: a
// json.RawMessage is JSON text whatever it holds, as in the memory store.
func (c *change) encodeSet(v any) error {
	switch v := v.(type) {
	case nil:
		c.value = []byte{tagNull}
	case []any:
		if v == nil {
			c.value = []byte{tagNilList}
			return nil
		}
		c.items = make([][]byte, len(v))
		for i, item := range v {
			b, err := marshalJSON(item)
			if err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
			c.items[i] = b
		}
	case int64:
		c.value = tagged(tagInt, uint64(v))
	case int:
		c.value = tagged(tagInt, uint64(int64(v)))
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%v cannot be encoded as JSON", v)
		}
		c.value = tagged(tagFloat, math.Float64bits(v))
	default:
		b, err := marshalJSON(v)
		if err != nil {
			return err
		}
		c.value = append([]byte{tagJSON}, b...)
	}
	return nil
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
