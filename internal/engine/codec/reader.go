package codec

import (
	"encoding/binary"
	"fmt"
)

// Reader consumes an encoded record. The first problem sticks (Err) and
// every later read returns a zero value, so a decoder checks once, at End.
type Reader struct {
	b   []byte
	err error
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err is the first problem met, nil if none.
func (r *Reader) Err() error { return r.err }

// Len is the number of bytes not read yet.
func (r *Reader) Len() int { return len(r.b) }

// End returns Err, or an error if bytes are left after what, the record
// just read.
func (r *Reader) End(what string) error {
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%w: %d bytes after %s", ErrCorrupt, len(r.b), what)
	}
	return r.err
}

func (r *Reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	r.b = nil
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.b) < 1 {
		r.fail("byte")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Uint32 reads a 4-byte little-endian integer.
func (r *Reader) Uint32() uint32 {
	if len(r.b) < 4 {
		r.fail("integer")
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

// Bytes reads n bytes into memory of their own.
func (r *Reader) Bytes(n uint64) []byte {
	b := r.Slice(n)
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// Slice reads n bytes that share the record's memory: for a record whose
// memory outlives what is read from it.
func (r *Reader) Slice(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail("bytes")
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

// String reads a uvarint-prefixed string.
func (r *Reader) String() string {
	n := r.Uvarint()
	if n > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
