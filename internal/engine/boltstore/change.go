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

// kind is what a change needs to know of a value, as in the memory store.
type kind int

const (
	kindMissing kind = iota
	kindList
	kindNumber
	kindOther
)

func (k kind) String() string {
	switch k {
	case kindList:
		return "a list"
	case kindNumber:
		return "a number"
	case kindOther:
		return "a string, bool or object"
	default:
		return "nothing"
	}
}

// change is a readmodel.Change encoded before the transaction, so that
// nothing that can fail on the value runs after the first write.
type change struct {
	key   []byte // prefixed (storedName)
	op    readmodel.Op
	kind  kind     // OpSet: the kind the value leaves behind
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

// encodeSet encodes the value of an OpSet, with the kind the memory store
// gives it: only untyped nil, []any, int64, float64 and int count as
// missing, lists or numbers (a json.RawMessage is "other" whatever it holds).
func (c *change) encodeSet(v any) error {
	switch v := v.(type) {
	case nil:
		c.kind, c.value = kindMissing, []byte{tagNull}
	case []any:
		c.kind = kindList
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
		c.kind, c.value = kindNumber, tagged(tagInt, uint64(v))
	case int:
		c.kind, c.value = kindNumber, tagged(tagInt, uint64(int64(v)))
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%v cannot be encoded as JSON", v)
		}
		c.kind, c.value = kindNumber, tagged(tagFloat, math.Float64bits(v))
	default:
		b, err := marshalJSON(v)
		if err != nil {
			return err
		}
		c.kind, c.value = kindOther, append([]byte{tagJSON}, b...)
	}
	return nil
}

// storedKind is the kind of the value under key in doc (nil: none yet).
func storedKind(doc *bolt.Bucket, key []byte) (kind, error) {
	if doc == nil {
		return kindMissing, nil
	}
	if v := doc.Get(key); v != nil {
		if len(v) == 0 {
			return 0, fmt.Errorf("key %q: %w: empty value", key[1:], codec.ErrCorrupt)
		}
		switch v[0] {
		case tagNull:
			return kindMissing, nil
		case tagNilList:
			return kindList, nil
		case tagInt, tagFloat:
			if len(v) != 9 {
				return 0, fmt.Errorf("key %q: %w: number of %d bytes", key[1:], codec.ErrCorrupt, len(v))
			}
			return kindNumber, nil
		case tagJSON:
			return kindOther, nil
		default:
			return 0, fmt.Errorf("key %q: %w: value tag %q", key[1:], codec.ErrCorrupt, v[0])
		}
	}
	if doc.Bucket(key) != nil {
		return kindList, nil
	}
	return kindMissing, nil
}

// validateChanges checks, reading only, that every change fits the value
// it finds, in order, so that a change sees the kind an earlier one leaves
// behind. The messages are the memory store's.
func validateChanges(doc *bolt.Bucket, changes []change) error {
	var pending map[string]kind // keys changed earlier in this batch
	for i, c := range changes {
		k, seen := pending[string(c.key)]
		if !seen {
			var err error
			if k, err = storedKind(doc, c.key); err != nil {
				return err
			}
		}
		var next kind
		switch c.op {
		case readmodel.OpSet:
			next = c.kind
		case readmodel.OpAppend:
			if k != kindMissing && k != kindList {
				return fmt.Errorf("change %d: append to key %q: %w: it holds %s, not a list", i, c.key[1:], readmodel.ErrTypeClash, k)
			}
			next = kindList
		case readmodel.OpIncrement:
			if k != kindMissing && k != kindNumber {
				return fmt.Errorf("change %d: increment key %q: %w: it holds %s, not a number", i, c.key[1:], readmodel.ErrTypeClash, k)
			}
			next = kindNumber
		}
		if len(changes) > 1 {
			if pending == nil {
				pending = make(map[string]kind, len(changes))
			}
			pending[string(c.key)] = next
		}
	}
	return nil
}
