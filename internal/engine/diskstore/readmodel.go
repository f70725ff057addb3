package diskstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// ReadModels is the readmodel.Store of --storage=disk: each projection's
// document and checkpoint live in the data file, and Apply writes both in
// one transaction, so a restart neither applies an event twice nor skips
// one. Documents render byte for byte as the memory store renders them.
//
// Inside readmodels/<name>, the doc bucket maps each key to a value tagged
// with its kind (rmTag*), except lists, which are nested buckets of items
// (JSON text) under 8-byte big-endian indexes: an append writes one item,
// whatever the length of the list. Every name (projection, key, stream) is
// stored behind a one-byte prefix, because bbolt refuses empty keys and a
// read model key can be empty.
type ReadModels struct {
	db     *DB
	closed atomic.Bool
}

// NewReadModels returns the read models kept in db. Closing them does not
// close db: its owner does.
func NewReadModels(db *DB) *ReadModels {
	return &ReadModels{db: db}
}

var (
	_ readmodel.Store            = (*ReadModels)(nil)
	_ readmodel.CheckpointLister = (*ReadModels)(nil)
)

// errRMClosed is returned by ReadModels after Close.
var errRMClosed = errors.New("read model store is closed")

var (
	rmBucketDoc        = []byte("doc")
	rmBucketCheckpoint = []byte("checkpoint")
)

// rmNamePrefix leads every stored name: bbolt keys cannot be empty, names can.
const rmNamePrefix = '.'

// The first byte of a stored value that is not a list says what it holds.
const (
	rmTagNull    = 'z' // null: an append or increment starts afresh
	rmTagNilList = 'l' // a nil []any set with OpSet: renders null, but is a list
	rmTagInt     = 'i' // int64, 8 bytes big-endian
	rmTagFloat   = 'f' // float64 bits, 8 bytes big-endian
	rmTagJSON    = 'j' // JSON text: a string, bool, object or anything else
)

// rmKind is what a change needs to know of a value, as in the memory store.
type rmKind int

const (
	rmKindMissing rmKind = iota
	rmKindList
	rmKindNumber
	rmKindOther
)

func (k rmKind) String() string {
	switch k {
	case rmKindList:
		return "a list"
	case rmKindNumber:
		return "a number"
	case rmKindOther:
		return "a string, bool or object"
	default:
		return "nothing"
	}
}

// rmChange is a readmodel.Change encoded before the transaction, so that
// nothing that can fail on the value runs after the first write.
type rmChange struct {
	key   []byte // prefixed
	op    readmodel.Op
	kind  rmKind   // OpSet: the kind the value leaves behind
	value []byte   // OpSet of anything but a non-nil []any: tagged; OpAppend: the item's JSON
	items [][]byte // OpSet of a non-nil []any: each item's JSON
	delta int64
}

// rmName prefixes name for use as a bbolt key.
func rmName(name string) ([]byte, error) {
	if len(name)+1 > bolt.MaxKeySize {
		return nil, fmt.Errorf("name of %d bytes is longer than the %d bytes the disk store allows", len(name), bolt.MaxKeySize-1)
	}
	b := make([]byte, 1+len(name))
	b[0] = rmNamePrefix
	copy(b[1:], name)
	return b, nil
}

// rmJSON encodes v as json.Marshal does, so documents match the memory
// store's (which escapes HTML characters and compacts raw JSON text).
func rmJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > bolt.MaxValueSize {
		return nil, fmt.Errorf("value of %d bytes encoded is larger than the %d bytes the disk store allows", len(b), bolt.MaxValueSize)
	}
	return b, nil
}

func rmTagged(tag byte, n uint64) []byte {
	b := make([]byte, 9)
	b[0] = tag
	binary.BigEndian.PutUint64(b[1:], n)
	return b
}

// rmEncode encodes changes. An error names the change.
func rmEncode(changes []readmodel.Change) ([]rmChange, error) {
	out := make([]rmChange, len(changes))
	for i, c := range changes {
		key, err := rmName(c.Key)
		if err != nil {
			return nil, fmt.Errorf("change %d: key: %w", i, err)
		}
		e := rmChange{key: key, op: c.Op, delta: c.Delta}
		switch c.Op {
		case readmodel.OpSet:
			e.kind, e.value, e.items, err = rmEncodeSet(c.Value)
			if err != nil {
				return nil, fmt.Errorf("change %d: set key %q: %w", i, c.Key, err)
			}
		case readmodel.OpAppend:
			if e.value, err = rmJSON(c.Value); err != nil {
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

// rmEncodeSet encodes the value of an OpSet, with the kind the memory store
// gives it: only untyped nil, []any, int64, float64 and int count as
// missing, lists or numbers (a json.RawMessage is "other" whatever it holds).
func rmEncodeSet(v any) (rmKind, []byte, [][]byte, error) {
	switch v := v.(type) {
	case nil:
		return rmKindMissing, []byte{rmTagNull}, nil, nil
	case []any:
		if v == nil {
			return rmKindList, []byte{rmTagNilList}, nil, nil
		}
		items := make([][]byte, len(v))
		for i, item := range v {
			b, err := rmJSON(item)
			if err != nil {
				return 0, nil, nil, fmt.Errorf("item %d: %w", i, err)
			}
			items[i] = b
		}
		return rmKindList, nil, items, nil
	case int64:
		return rmKindNumber, rmTagged(rmTagInt, uint64(v)), nil, nil
	case int:
		return rmKindNumber, rmTagged(rmTagInt, uint64(int64(v))), nil, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, nil, nil, fmt.Errorf("%v cannot be encoded as JSON", v)
		}
		return rmKindNumber, rmTagged(rmTagFloat, math.Float64bits(v)), nil, nil
	default:
		b, err := rmJSON(v)
		if err != nil {
			return 0, nil, nil, err
		}
		return rmKindOther, append([]byte{rmTagJSON}, b...), nil, nil
	}
}

// rmKindOfStored is the kind of the value under key in doc (nil: none yet).
func rmKindOfStored(doc *bolt.Bucket, key []byte) (rmKind, error) {
	if doc == nil {
		return rmKindMissing, nil
	}
	if v := doc.Get(key); v != nil {
		if len(v) == 0 {
			return 0, fmt.Errorf("key %q: %w: empty value", key[1:], codec.ErrCorrupt)
		}
		switch v[0] {
		case rmTagNull:
			return rmKindMissing, nil
		case rmTagNilList:
			return rmKindList, nil
		case rmTagInt, rmTagFloat:
			if len(v) != 9 {
				return 0, fmt.Errorf("key %q: %w: number of %d bytes", key[1:], codec.ErrCorrupt, len(v))
			}
			return rmKindNumber, nil
		case rmTagJSON:
			return rmKindOther, nil
		default:
			return 0, fmt.Errorf("key %q: %w: value tag %q", key[1:], codec.ErrCorrupt, v[0])
		}
	}
	if doc.Bucket(key) != nil {
		return rmKindList, nil
	}
	return rmKindMissing, nil
}

// rmValidate checks, reading only, that every change fits the value it
// finds, in order, so that a change sees the kind an earlier one leaves
// behind. The messages are the memory store's.
func rmValidate(doc *bolt.Bucket, changes []rmChange) error {
	var pending map[string]rmKind // keys changed earlier in this batch
	for i, c := range changes {
		k, seen := pending[string(c.key)]
		if !seen {
			var err error
			if k, err = rmKindOfStored(doc, c.key); err != nil {
				return err
			}
		}
		var next rmKind
		switch c.op {
		case readmodel.OpSet:
			next = c.kind
		case readmodel.OpAppend:
			if k != rmKindMissing && k != rmKindList {
				return fmt.Errorf("change %d: append to key %q: %w: it holds %s, not a list", i, c.key[1:], readmodel.ErrTypeClash, k)
			}
			next = rmKindList
		case readmodel.OpIncrement:
			if k != rmKindMissing && k != rmKindNumber {
				return fmt.Errorf("change %d: increment key %q: %w: it holds %s, not a number", i, c.key[1:], readmodel.ErrTypeClash, k)
			}
			next = rmKindNumber
		}
		if len(changes) > 1 {
			if pending == nil {
				pending = make(map[string]rmKind, len(changes))
			}
			pending[string(c.key)] = next
		}
	}
	return nil
}

// rmList is a list bucket being appended to, and its next index.
type rmList struct {
	b    *bolt.Bucket
	next uint64
}

// rmWriter applies validated changes to one document in one transaction.
// bbolt keeps the key and value slices until the commit, so every Put gets
// its own.
type rmWriter struct {
	doc   *bolt.Bucket
	lists map[string]*rmList // lists appended to in this Apply
}

func (w *rmWriter) apply(c *rmChange) error {
	switch c.op {
	case readmodel.OpSet:
		delete(w.lists, string(c.key))
		if c.value != nil {
			if w.doc.Bucket(c.key) != nil {
				if err := w.doc.DeleteBucket(c.key); err != nil {
					return err
				}
			}
			return w.doc.Put(c.key, c.value)
		}
		if err := w.clear(c.key); err != nil {
			return err
		}
		l, err := w.newList(c.key)
		if err != nil {
			return err
		}
		for _, item := range c.items {
			if err := l.append(item); err != nil {
				return err
			}
		}
		return nil
	case readmodel.OpAppend:
		l, err := w.list(c.key)
		if err != nil {
			return err
		}
		return l.append(c.value)
	default: // OpIncrement
		var v []byte
		switch old := w.doc.Get(c.key); {
		case old == nil || old[0] == rmTagNull:
			v = rmTagged(rmTagInt, uint64(c.delta))
		case old[0] == rmTagInt:
			v = rmTagged(rmTagInt, uint64(int64(binary.BigEndian.Uint64(old[1:]))+c.delta))
		default: // rmTagFloat: validated
			f := math.Float64frombits(binary.BigEndian.Uint64(old[1:]))
			v = rmTagged(rmTagFloat, math.Float64bits(f+float64(c.delta)))
		}
		return w.doc.Put(c.key, v)
	}
}

// clear removes the value or list under key.
func (w *rmWriter) clear(key []byte) error {
	if w.doc.Bucket(key) != nil {
		return w.doc.DeleteBucket(key)
	}
	return w.doc.Delete(key)
}

func (w *rmWriter) newList(key []byte) (*rmList, error) {
	b, err := w.doc.CreateBucket(key)
	if err != nil {
		return nil, err
	}
	return w.remember(key, &rmList{b: b}), nil
}

func (w *rmWriter) remember(key []byte, l *rmList) *rmList {
	// Items only ever go at the end: full pages waste no space.
	l.b.FillPercent = 1
	if w.lists == nil {
		w.lists = make(map[string]*rmList)
	}
	w.lists[string(key)] = l
	return l
}

// list returns the list under key to append to, starting one where the key
// is missing or null.
func (w *rmWriter) list(key []byte) (*rmList, error) {
	if l := w.lists[string(key)]; l != nil {
		return l, nil
	}
	b := w.doc.Bucket(key)
	if b == nil {
		if err := w.doc.Delete(key); err != nil { // a null, if anything
			return nil, err
		}
		return w.newList(key)
	}
	l := &rmList{b: b}
	if k, _ := b.Cursor().Last(); k != nil {
		if len(k) != 8 {
			return nil, fmt.Errorf("list %q: %w: index of %d bytes", key[1:], codec.ErrCorrupt, len(k))
		}
		l.next = binary.BigEndian.Uint64(k) + 1
	}
	return w.remember(key, l), nil
}

func (l *rmList) append(item []byte) error {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, l.next)
	l.next++
	return l.b.Put(k, item)
}

// usable says why a call cannot run: its context ended or the store closed.
func (s *ReadModels) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return errRMClosed
	}
	return nil
}

// Apply validates every change against the stored document and only then
// writes the changes and cp, in one transaction: a type clash or a value
// that does not encode as JSON leaves the document and checkpoint as they
// were, and a reader or a restart sees both or neither. An append costs one
// item's write, however long the list.
func (s *ReadModels) Apply(ctx context.Context, projection string, changes []readmodel.Change, cp readmodel.Checkpoint) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	name, err := rmName(projection)
	if err != nil {
		return fmt.Errorf("apply to read model %q: %w", projection, err)
	}
	enc, err := rmEncode(changes)
	if err != nil {
		return fmt.Errorf("apply to read model %q: %w", projection, err)
	}
	type rmSeq struct{ stream, seq []byte }
	seqs := make([]rmSeq, 0, len(cp))
	for stream, seq := range cp {
		k, err := rmName(stream)
		if err != nil {
			return fmt.Errorf("apply to read model %q: checkpoint of stream: %w", projection, err)
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, seq)
		seqs = append(seqs, rmSeq{k, v})
	}
	err = s.db.Update(ctx, func(tx *bolt.Tx) error {
		models := tx.Bucket(bucketReadModels)
		p := models.Bucket(name)
		var doc, cpb *bolt.Bucket
		if p != nil {
			doc, cpb = p.Bucket(rmBucketDoc), p.Bucket(rmBucketCheckpoint)
			if doc == nil || cpb == nil {
				return fmt.Errorf("%w: the doc or checkpoint bucket is missing", codec.ErrCorrupt)
			}
		}
		if err := rmValidate(doc, enc); err != nil {
			return err
		}
		// Everything is checked: the writes below fail only if bbolt does.
		if p == nil {
			var err error
			if p, err = models.CreateBucket(name); err != nil {
				return err
			}
			if doc, err = p.CreateBucket(rmBucketDoc); err != nil {
				return err
			}
			if cpb, err = p.CreateBucket(rmBucketCheckpoint); err != nil {
				return err
			}
		}
		w := rmWriter{doc: doc}
		for i := range enc {
			if err := w.apply(&enc[i]); err != nil {
				return err
			}
		}
		for _, s := range seqs {
			if err := cpb.Put(s.stream, s.seq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply to read model %q: %w", projection, err)
	}
	return nil
}

// Document returns the projection's document as a JSON object, keys in
// sorted order, read in one transaction.
func (s *ReadModels) Document(ctx context.Context, projection string) ([]byte, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	name, err := rmName(projection)
	if err != nil {
		return nil, fmt.Errorf("read model %q: %w", projection, readmodel.ErrNotFound)
	}
	var out []byte
	err = s.db.View(func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketReadModels).Bucket(name)
		if p == nil {
			return readmodel.ErrNotFound
		}
		doc := p.Bucket(rmBucketDoc)
		if doc == nil {
			return fmt.Errorf("%w: the doc bucket is missing", codec.ErrCorrupt)
		}
		var rerr error
		out, rerr = rmAppendDocument(out, doc)
		return rerr
	})
	if err != nil {
		return nil, fmt.Errorf("read model %q: %w", projection, err)
	}
	return out, nil
}

// rmAppendDocument renders doc onto out. bbolt orders keys as bytes, which
// is the order json.Marshal gives a map's keys.
func rmAppendDocument(out []byte, doc *bolt.Bucket) ([]byte, error) {
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
		if v == nil { // a list
			out = append(out, '[')
			first := true
			err := doc.Bucket(k).ForEach(func(_, item []byte) error {
				if !first {
					out = append(out, ',')
				}
				first = false
				out = append(out, item...)
				return nil
			})
			if err != nil {
				return nil, err
			}
			out = append(out, ']')
			continue
		}
		if len(v) == 0 || (v[0] == rmTagInt || v[0] == rmTagFloat) && len(v) != 9 {
			return nil, fmt.Errorf("key %q: %w: value of %d bytes", k[1:], codec.ErrCorrupt, len(v))
		}
		switch v[0] {
		case rmTagNull, rmTagNilList:
			out = append(out, "null"...)
		case rmTagInt:
			out = strconv.AppendInt(out, int64(binary.BigEndian.Uint64(v[1:])), 10)
		case rmTagFloat:
			out = rmAppendFloat(out, math.Float64frombits(binary.BigEndian.Uint64(v[1:])))
		case rmTagJSON:
			out = append(out, v[1:]...)
		default:
			return nil, fmt.Errorf("key %q: %w: value tag %q", k[1:], codec.ErrCorrupt, v[0])
		}
	}
	return append(out, '}'), nil
}

// rmAppendFloat formats f as encoding/json does (Go's shortest form, with an
// exponent only for very large or small magnitudes), without its error path:
// a stored float is always finite.
func rmAppendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// Checkpoint returns the projection's checkpoint; an unknown projection has
// an empty one.
func (s *ReadModels) Checkpoint(ctx context.Context, projection string) (readmodel.Checkpoint, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	name, err := rmName(projection)
	if err != nil {
		return readmodel.Checkpoint{}, nil // too long to have been stored
	}
	var cp readmodel.Checkpoint
	err = s.db.View(func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketReadModels).Bucket(name)
		if p == nil {
			cp = readmodel.Checkpoint{}
			return nil
		}
		var err error
		cp, err = rmReadCheckpoint(p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint of read model %q: %w", projection, err)
	}
	return cp, nil
}

// Checkpoints returns every stored projection's checkpoint.
func (s *ReadModels) Checkpoints(ctx context.Context) (map[string]readmodel.Checkpoint, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	out := map[string]readmodel.Checkpoint{}
	err := s.db.View(func(tx *bolt.Tx) error {
		models := tx.Bucket(bucketReadModels)
		return models.ForEachBucket(func(k []byte) error {
			cp, err := rmReadCheckpoint(models.Bucket(k))
			if err != nil {
				return fmt.Errorf("read model %q: %w", k[1:], err)
			}
			out[string(k[1:])] = cp
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	return out, nil
}

// rmReadCheckpoint decodes a projection bucket's checkpoint.
func rmReadCheckpoint(p *bolt.Bucket) (readmodel.Checkpoint, error) {
	cpb := p.Bucket(rmBucketCheckpoint)
	if cpb == nil {
		return nil, fmt.Errorf("%w: the checkpoint bucket is missing", codec.ErrCorrupt)
	}
	cp := readmodel.Checkpoint{}
	return cp, cpb.ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("stream %q: %w: sequence of %d bytes", k[1:], codec.ErrCorrupt, len(v))
		}
		cp[string(k[1:])] = binary.BigEndian.Uint64(v)
		return nil
	})
}

// Delete removes the projection's document and checkpoint. Deleting an
// unknown projection is not an error.
func (s *ReadModels) Delete(ctx context.Context, projection string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	name, err := rmName(projection)
	if err != nil {
		return nil // too long to have been stored
	}
	err = s.db.Update(ctx, func(tx *bolt.Tx) error {
		models := tx.Bucket(bucketReadModels)
		if models.Bucket(name) == nil {
			return nil
		}
		return models.DeleteBucket(name)
	})
	if err != nil {
		return fmt.Errorf("delete read model %q: %w", projection, err)
	}
	return nil
}

// Close makes later calls return an error; closing again is a no-op. The
// DB stays open: its owner closes it.
func (s *ReadModels) Close() error {
	s.closed.Store(true)
	return nil
}
