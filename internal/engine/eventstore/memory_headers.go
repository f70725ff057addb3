package eventstore

import (
	"encoding/binary"
	"unsafe"
)

// An event's headers are kept in its block, not as a map: a map per event
// is most of a store's heap when events carry a few CloudEvents attributes,
// and every collection would scan it. The encoding is the number of
// headers, then each name and value, all lengths as uvarints.

// headersSize is the length of h encoded; 0 for no headers.
func headersSize(h map[string]string) int {
	if len(h) == 0 {
		return 0
	}
	n := uvarintLen(uint64(len(h)))
	for k, v := range h {
		n += uvarintLen(uint64(len(k))) + len(k) + uvarintLen(uint64(len(v))) + len(v)
	}
	return n
}

// putHeaders encodes h into b, which holds headersSize(h) bytes.
func putHeaders(b []byte, h map[string]string) {
	if len(h) == 0 {
		return
	}
	at := binary.PutUvarint(b, uint64(len(h)))
	for k, v := range h {
		at += binary.PutUvarint(b[at:], uint64(len(k)))
		at += copy(b[at:], k)
		at += binary.PutUvarint(b[at:], uint64(len(v)))
		at += copy(b[at:], v)
	}
}

// readHeaders decodes the headers putHeaders wrote into a new map whose
// names and values are views of b: block bytes never change once written.
func readHeaders(b []byte) map[string]string {
	n, at := binary.Uvarint(b)
	h := make(map[string]string, n)
	for range n {
		var k string
		k, at = readString(b, at)
		h[k], at = readString(b, at)
	}
	return h
}

func readString(b []byte, at int) (string, int) {
	n, w := binary.Uvarint(b[at:])
	at += w
	if n == 0 {
		return "", at
	}
	return unsafe.String(&b[at], int(n)), at + int(n)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
