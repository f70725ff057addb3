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
// bbolt keeps the value slices until the commit, so every Put gets its
// own. A key whose changes in the transaction leave a value, not a list
// (sets of one, increments), is written once, by flush, with the value the
// last of them leaves: a key that every event of a commit sets or counts
// costs one write, not one per event.
type docWriter struct {
	doc   *bolt.Bucket
	lists map[string]*list // lists appended to in this transaction
	// values holds the keys waiting for flush, in the order first changed,
	// and index finds them by key.
	values []pendingValue
	index  map[string]int
}

// pendingValue is the value a key is left with, until flush writes it.
type pendingValue struct {
	key   []byte
	value []byte // tagged; nil when number holds it
	// number is the value of increments, an owned copy: the values of the
	// changes themselves are shared with readers of what is staged.
	number [9]byte
	done   bool // written early (see flushKey), or given up for a list
}

// list is a list bucket being appended to, and its next index.
type list struct {
	b    *bolt.Bucket
	next uint64
	key  [8]byte // the next item's key: bbolt copies keys, so one array serves
}

func (w *docWriter) apply(c *change) error {
	switch c.op {
	case readmodel.OpSet:
		if c.items == nil {
			delete(w.lists, string(c.key))
			w.pending(c.key).value = c.value
			return nil
		}
		return w.setList(c)
	case readmodel.OpAppend:
		if err := w.flushKey(c.key); err != nil {
			return err
		}
		l, err := w.list(c.key)
		if err != nil {
			return err
		}
		return l.append(c.value)
	default: // OpIncrement
		return w.increment(c.key, c.delta)
	}
}

// pending returns key's pending value, adding one for a key not pending.
func (w *docWriter) pending(key []byte) *pendingValue {
	if i, ok := w.index[string(key)]; ok {
		return &w.values[i]
	}
	if w.index == nil {
		w.index = make(map[string]int)
	}
	w.index[string(key)] = len(w.values)
	w.values = append(w.values, pendingValue{key: key})
	return &w.values[len(w.values)-1]
}

// setList replaces whatever key holds with a list of the items.
func (w *docWriter) setList(c *change) error {
	if i, ok := w.index[string(c.key)]; ok {
		w.values[i].done = true // the list replaces it, as it replaces what the file holds
		delete(w.index, string(c.key))
	}
	delete(w.lists, string(c.key))
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

// increment adds delta to the number under key: the pending one, or the
// one in the file.
func (w *docWriter) increment(key []byte, delta int64) error {
	var old []byte
	if i, ok := w.index[string(key)]; ok {
		old = w.values[i].stored()
	} else {
		old = w.doc.Get(key)
	}
	var next [9]byte
	switch {
	case old == nil || old[0] == tagNull:
		appendTagged(next[:0], tagInt, uint64(delta))
	case old[0] == tagInt:
		appendTagged(next[:0], tagInt, uint64(int64(binary.BigEndian.Uint64(old[1:]))+delta))
	default: // tagFloat: validated
		f := math.Float64frombits(binary.BigEndian.Uint64(old[1:]))
		appendTagged(next[:0], tagFloat, math.Float64bits(f+float64(delta)))
	}
	p := w.pending(key)
	p.number, p.value = next, nil
	return nil
}

// stored is the value flush writes for p.
func (p *pendingValue) stored() []byte {
	if p.value == nil {
		return p.number[:]
	}
	return p.value
}

// flushKey writes key's pending value now, if it has one: a list change
// that follows needs the file to hold it.
func (w *docWriter) flushKey(key []byte) error {
	i, ok := w.index[string(key)]
	if !ok {
		return nil
	}
	delete(w.index, string(key))
	p := &w.values[i]
	p.done = true
	return w.put(p.key, p.stored())
}

// flush writes every pending value.
func (w *docWriter) flush() error {
	for i := range w.values {
		if p := &w.values[i]; !p.done {
			if err := w.put(p.key, p.stored()); err != nil {
				return err
			}
		}
	}
	return nil
}

// put sets key to the tagged value v, replacing a list if key holds one.
func (w *docWriter) put(key, v []byte) error {
	if w.doc.Bucket(key) != nil {
		if err := w.doc.DeleteBucket(key); err != nil {
			return err
		}
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
	binary.BigEndian.PutUint64(l.key[:], l.next)
	l.next++
	return l.b.Put(l.key[:], item)
}
