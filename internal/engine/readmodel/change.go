package readmodel

import (
	"errors"
	"fmt"
)

// ErrTypeClash is wrapped by the error Apply returns for a change that does
// not fit the value under its key: appending to something that is not a
// list, or incrementing something that is not a number. Nothing of that Apply
// is applied.
var ErrTypeClash = errors.New("change does not fit the value under its key")

// Kind is what a change needs to know about a value: whether it can be
// appended to or incremented. A missing key (or null) can be either. Every
// Store checks changes with KindOf and Validate, so that all refuse the
// same changes with the same errors.
type Kind int

// The kinds of value.
const (
	KindMissing Kind = iota
	KindList
	KindNumber
	KindOther
)

func (k Kind) String() string {
	switch k {
	case KindList:
		return "a list"
	case KindNumber:
		return "a number"
	case KindOther:
		return "a string, bool or object"
	default:
		return "nothing"
	}
}

// KindOf is the kind of a value as a Change sets it: only untyped nil,
// []any, and int, int64 and float64 are missing, a list and a number;
// anything else, a json.RawMessage whatever it holds too, is other.
func KindOf(v any) Kind {
	switch v.(type) {
	case nil:
		return KindMissing
	case []any:
		return KindList
	case int64, float64, int:
		return KindNumber
	default:
		return KindOther
	}
}

// Leaves is the kind of value c leaves under its key once applied.
func (c Change) Leaves() Kind {
	switch c.Op {
	case OpSet:
		return KindOf(c.Value)
	case OpAppend:
		return KindList
	default:
		return KindNumber
	}
}

// Validate checks, reading only, that every change fits the value it
// finds, in order, so that a change sees the kind an earlier one in the
// batch leaves behind. stored returns the kind the key of changes[i] holds
// before the batch; it is asked once per key at most.
func Validate(changes []Change, stored func(i int) (Kind, error)) error {
	var pending map[string]Kind // keys changed earlier in this batch
	for i, c := range changes {
		k, seen := pending[c.Key]
		if !seen {
			var err error
			if k, err = stored(i); err != nil {
				return err
			}
		}
		switch c.Op {
		case OpSet:
		case OpAppend:
			if k != KindMissing && k != KindList {
				return fmt.Errorf("change %d: append to key %q: %w: it holds %s, not a list", i, c.Key, ErrTypeClash, k)
			}
		case OpIncrement:
			if k != KindMissing && k != KindNumber {
				return fmt.Errorf("change %d: increment key %q: %w: it holds %s, not a number", i, c.Key, ErrTypeClash, k)
			}
		default:
			return fmt.Errorf("change %d: key %q: unknown op %d", i, c.Key, c.Op)
		}
		if len(changes) > 1 {
			if pending == nil {
				pending = make(map[string]Kind, len(changes))
			}
			pending[c.Key] = c.Leaves()
		}
	}
	return nil
}

// storedKind is the kind of a value in a Memory document, where a list
// appended to is a *list.
func storedKind(v any) Kind {
	if _, ok := v.(*list); ok {
		return KindList
	}
	return KindOf(v)
}

// apply makes one validated change to doc.
func apply(doc map[string]any, c Change) {
	switch c.Op {
	case OpSet:
		doc[c.Key] = c.Value
	case OpAppend:
		switch v := doc[c.Key].(type) {
		case *list:
			v.append(c.Value) // in place: no map write
		case []any: // a list an OpSet put there
			l := listOf(v)
			l.append(c.Value)
			doc[c.Key] = l
		default: // missing or null
			l := &list{}
			l.append(c.Value)
			doc[c.Key] = l
		}
	case OpIncrement:
		switch n := doc[c.Key].(type) {
		case float64:
			doc[c.Key] = n + float64(c.Delta)
		case int:
			doc[c.Key] = int64(n) + c.Delta
		case int64:
			doc[c.Key] = n + c.Delta
		default: // missing or null
			doc[c.Key] = c.Delta
		}
	}
}
