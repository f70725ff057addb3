package boltstore

import (
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// docWriter applies validated changes to one document in one transaction.
// bbolt keeps the key and value slices until the commit, so every Put gets
// its own.
type docWriter struct {
	doc   *bolt.Bucket
	lists map[string]*list // lists appended to in this Apply
}

// list is a list bucket being appended to, and its next index.
type list struct {
	b    *bolt.Bucket
	next uint64
}

func (w *docWriter) apply(c *change) error {
	switch c.op {
	case readmodel.OpSet:
		return w.set(c)
	case readmodel.OpAppend:
		l, err := w.list(c.key)
		if err != nil {
			return err
		}
		return l.append(c.value)
	default: // OpIncrement
		return w.increment(c.key, c.delta)
	}
}

func (w *docWriter) set(c *change) error {
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
}

func (w *docWriter) increment(key []byte, delta int64) error {
	var v []byte
	switch old := w.doc.Get(key); {
	case old == nil || old[0] == tagNull:
		v = tagged(tagInt, uint64(delta))
	case old[0] == tagInt:
		v = tagged(tagInt, uint64(int64(binary.BigEndian.Uint64(old[1:]))+delta))
	default: // tagFloat: validated
		f := math.Float64frombits(binary.BigEndian.Uint64(old[1:]))
		v = tagged(tagFloat, math.Float64bits(f+float64(delta)))
	}
	return w.doc.Put(key, v)
}

// clear removes the value or list under key.
func (w *docWriter) clear(key []byte) error {
	if w.doc.Bucket(key) != nil {
		return w.doc.DeleteBucket(key)
	}
	return w.doc.Delete(key)
}

func (w *docWriter) newList(key []byte) (*list, error) {
	b, err := w.doc.CreateBucket(key)
	if err != nil {
		return nil, err
	}
	return w.remember(key, &list{b: b}), nil
}

func (w *docWriter) remember(key []byte, l *list) *list {
	// Items only ever go at the end: full pages waste no space.
	l.b.FillPercent = 1
	if w.lists == nil {
		w.lists = make(map[string]*list)
	}
	w.lists[string(key)] = l
	return l
}

// list returns the list under key to append to, starting one where the key
// is missing or null.
func (w *docWriter) list(key []byte) (*list, error) {
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
	l := &list{b: b}
	if k, _ := b.Cursor().Last(); k != nil {
		if len(k) != 8 {
			return nil, fmt.Errorf("list %q: %w: index of %d bytes", key[1:], codec.ErrCorrupt, len(k))
		}
		l.next = binary.BigEndian.Uint64(k) + 1
	}
	return w.remember(key, l), nil
}

func (l *list) append(item []byte) error {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8), l.next)
	l.next++
	return l.b.Put(k, item)
}
