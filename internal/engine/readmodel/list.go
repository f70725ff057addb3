package readmodel

import (
	"bytes"
	"encoding/json"
)

// listChunk is how many values one chunk of a list holds.
const listChunk = 1024

// list is the in-memory form of a list that OpAppend grows. It keeps its
// values in fixed-size chunks, so appending never copies the values already
// there: a plain slice doubling at a million items copies (and, in a VM,
// page-faults) megabytes at a time, a pause on the event path. It encodes as
// a JSON array.
type list struct {
	chunks [][]any
	n      int
}

// listOf starts a list holding the values of s (a list set with OpSet).
func listOf(s []any) *list {
	l := &list{}
	for _, v := range s {
		l.append(v)
	}
	return l
}

func (l *list) append(v any) {
	if l.n%listChunk == 0 {
		l.chunks = append(l.chunks, make([]any, 0, listChunk))
	}
	last := len(l.chunks) - 1
	l.chunks[last] = append(l.chunks[last], v)
	l.n++
}

// MarshalJSON encodes the list as a JSON array.
func (l *list) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	first := true
	for _, chunk := range l.chunks {
		for _, v := range chunk {
			if !first {
				buf.WriteByte(',')
			}
			first = false
			if err := enc.Encode(v); err != nil {
				return nil, err
			}
			buf.Truncate(buf.Len() - 1) // Encode ends each value with a newline
		}
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}
