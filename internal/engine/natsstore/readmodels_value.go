package natsstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// The first byte of a key's value message says what it holds.
const (
	tagNull    = 'z' // null: an append or increment starts afresh
	tagNilList = 'l' // a nil []any set with OpSet: renders null, but is a list
	tagInt     = 'i' // int64, 8 bytes big-endian
	tagFloat   = 'f' // float64 bits, 8 bytes big-endian
	tagJSON    = 'j' // JSON text: a string, bool, object or anything else
	// tagList is a list: uvarint full chunks, uvarint items in the tail,
	// then the tail, its items' JSON joined by commas. The full chunks are
	// messages of their own (listChunkSubject), written once each.
	tagList = 'L'
)

// A list's tail moves into a chunk message of its own once it holds
// chunkItems items or chunkBytes bytes: an append rewrites the tail only,
// so it costs at most about chunkBytes whatever the length of the list.
const (
	chunkItems = 64
	chunkBytes = 8 << 10
)

// errCorrupt marks a stored message this package did not write.
var errCorrupt = errors.New("read model data is corrupt")

// value is what one key of a document holds, decoded from its value
// message. The zero value is a missing key.
type value struct {
	tag  byte
	bits uint64 // tagInt, tagFloat
	json []byte // tagJSON; nil in the write cache, which needs only the kind
	// tagList
	chunks int    // full chunks
	tailN  int    // items in tail
	tail   []byte // items' JSON joined by commas
	// own says that tail's array belongs to this value alone, so push may
	// append in place: a value read or cached shares its array.
	own bool
}

// kind is what readmodel.Validate needs to know of v.
func (v *value) kind() readmodel.Kind {
	switch v.tag {
	case tagList, tagNilList:
		return readmodel.KindList
	case tagInt, tagFloat:
		return readmodel.KindNumber
	case tagJSON:
		return readmodel.KindOther
	default:
		return readmodel.KindMissing
	}
}

// size is about the memory v takes in the write cache.
func (v *value) size() int { return 64 + len(v.tail) + len(v.json) }

// encode is v's value message.
func (v *value) encode() []byte {
	switch v.tag {
	case tagInt, tagFloat:
		return binary.BigEndian.AppendUint64([]byte{v.tag}, v.bits)
	case tagJSON:
		return append([]byte{tagJSON}, v.json...)
	case tagList:
		b := make([]byte, 0, 1+2*binary.MaxVarintLen32+len(v.tail))
		b = append(b, tagList)
		b = binary.AppendUvarint(b, uint64(v.chunks))
		b = binary.AppendUvarint(b, uint64(v.tailN))
		return append(b, v.tail...)
	default:
		return []byte{v.tag}
	}
}

// encodedSize is about len(v.encode()), at least.
func (v *value) encodedSize() int { return 1 + 2*binary.MaxVarintLen32 + len(v.tail) + len(v.json) }

// decodeValue reads a value message. The value keeps b for its JSON and
// tail.
func decodeValue(b []byte) (value, error) {
	if len(b) == 0 {
		return value{}, fmt.Errorf("%w: empty value", errCorrupt)
	}
	v := value{tag: b[0]}
	switch v.tag {
	case tagNull, tagNilList:
		if len(b) != 1 {
			return value{}, fmt.Errorf("%w: %d bytes after tag %q", errCorrupt, len(b)-1, v.tag)
		}
	case tagInt, tagFloat:
		if len(b) != 9 {
			return value{}, fmt.Errorf("%w: number of %d bytes", errCorrupt, len(b))
		}
		v.bits = binary.BigEndian.Uint64(b[1:])
	case tagJSON:
		v.json = b[1:]
	case tagList:
		rest := b[1:]
		chunks, n := binary.Uvarint(rest)
		if n <= 0 || chunks > math.MaxInt32 {
			return value{}, fmt.Errorf("%w: list chunk count", errCorrupt)
		}
		rest = rest[n:]
		tailN, n := binary.Uvarint(rest)
		if n <= 0 || tailN > math.MaxInt32 || (tailN == 0) != (len(rest) == n) {
			return value{}, fmt.Errorf("%w: list tail", errCorrupt)
		}
		v.chunks, v.tailN, v.tail = int(chunks), int(tailN), rest[n:]
	default:
		return value{}, fmt.Errorf("%w: value tag %q", errCorrupt, v.tag)
	}
	return v, nil
}

// forCache is v as the write cache keeps it: JSON text is not needed to
// check or apply a change.
func (v value) forCache() *value {
	v.json, v.own = nil, false
	return &v
}

// render appends v as the memory store's json.Marshal renders it; chunk
// returns the JSON items of the list's full chunk i, joined by commas.
func (v *value) render(out []byte, chunk func(i int) ([]byte, error)) ([]byte, error) {
	switch v.tag {
	case tagNull, tagNilList:
		return append(out, "null"...), nil
	case tagInt:
		return strconv.AppendInt(out, int64(v.bits), 10), nil
	case tagFloat:
		f, err := json.Marshal(math.Float64frombits(v.bits))
		return append(out, f...), err
	case tagJSON:
		return append(out, v.json...), nil
	case tagList:
		out = append(out, '[')
		first := true
		for i := range v.chunks {
			items, err := chunk(i)
			if err != nil {
				return nil, err
			}
			if len(items) == 0 {
				return nil, fmt.Errorf("%w: list chunk %d is empty", errCorrupt, i)
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = append(out, items...)
		}
		if v.tailN > 0 {
			if !first {
				out = append(out, ',')
			}
			out = append(out, v.tail...)
		}
		return append(out, ']'), nil
	default:
		return nil, fmt.Errorf("%w: value tag %q", errCorrupt, v.tag)
	}
}

// setValue is the value an OpSet of x leaves, by readmodel.KindOf: a
// json.RawMessage is JSON text whatever it holds, as in the memory store.
// A non-nil []any becomes a list, its items cut into chunks by flush.
func setValue(x any, flush func(v *value)) (value, error) {
	switch x := x.(type) {
	case nil:
		return value{tag: tagNull}, nil
	case []any:
		if x == nil {
			return value{tag: tagNilList}, nil
		}
		v := value{tag: tagList}
		for i, item := range x {
			b, err := readmodel.AppendJSON(nil, item)
			if err != nil {
				return value{}, fmt.Errorf("item %d: %w", i, err)
			}
			v.push(b, flush)
		}
		return v, nil
	case int64:
		return value{tag: tagInt, bits: uint64(x)}, nil
	case int:
		return value{tag: tagInt, bits: uint64(int64(x))}, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return value{}, fmt.Errorf("%v cannot be encoded as JSON", x)
		}
		return value{tag: tagFloat, bits: math.Float64bits(x)}, nil
	default:
		b, err := readmodel.AppendJSON(nil, x)
		if err != nil {
			return value{}, err
		}
		return value{tag: tagJSON, json: b}, nil
	}
}

// push appends one item's JSON to the list v (starting a list where v is
// missing, null or a nil list) and hands a full tail to flush, which
// stores it as chunk v.chunks before v moves on to an empty tail.
func (v *value) push(item []byte, flush func(v *value)) {
	if v.tag != tagList {
		*v = value{tag: tagList}
	}
	if !v.own {
		v.tail = append(make([]byte, 0, max(2*len(v.tail), 256)), v.tail...)
		v.own = true
	}
	if v.tailN > 0 {
		v.tail = append(v.tail, ',')
	}
	v.tail = append(v.tail, item...)
	v.tailN++
	if v.tailN >= chunkItems || len(v.tail) >= chunkBytes {
		flush(v) // the chunk message takes the tail's array
		v.chunks++
		v.tail, v.tailN, v.own = nil, 0, false
	}
}

// increment adds delta to the number v holds, starting at 0 where v is
// missing or null, as the memory store counts.
func (v *value) increment(delta int64) {
	switch v.tag {
	case tagInt:
		v.bits = uint64(int64(v.bits) + delta)
	case tagFloat:
		v.bits = math.Float64bits(math.Float64frombits(v.bits) + float64(delta))
	default:
		*v = value{tag: tagInt, bits: uint64(delta)}
	}
}
