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

// kind is what a change needs to know about a value: whether it can be
// appended to or incremented. A missing key (or null) can be either.
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

func kindOf(v any) kind {
	switch v.(type) {
	case nil:
		return kindMissing
	case []any, *list:
		return kindList
	case int64, float64, int:
		return kindNumber
	default:
		return kindOther
	}
}

// validate checks that every change fits, in order, so that a later change
// sees the kind an earlier change in the same batch leaves behind.
func validate(doc map[string]any, changes []Change) error {
	var pending map[string]kind // keys changed earlier in this batch
	for i, c := range changes {
		k, seen := pending[c.Key]
		if !seen {
			k = kindOf(doc[c.Key])
		}
		var next kind
		switch c.Op {
		case OpSet:
			next = kindOf(c.Value)
		case OpAppend:
			if k != kindMissing && k != kindList {
				return fmt.Errorf("change %d: append to key %q: %w: it holds %s, not a list", i, c.Key, ErrTypeClash, k)
			}
			next = kindList
		case OpIncrement:
			if k != kindMissing && k != kindNumber {
				return fmt.Errorf("change %d: increment key %q: %w: it holds %s, not a number", i, c.Key, ErrTypeClash, k)
			}
			next = kindNumber
		default:
			return fmt.Errorf("change %d: key %q: unknown op %d", i, c.Key, c.Op)
		}
		if len(changes) > 1 {
			if pending == nil {
				pending = make(map[string]kind, len(changes))
			}
			pending[c.Key] = next
		}
	}
	return nil
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
