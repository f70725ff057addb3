package diskstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// codecVersion leads every encoded message, so a later layout can tell old
// records from new ones instead of misreading them.
const codecVersion = 1

// errCorrupt says a stored record does not decode: the file was damaged or
// written by something else.
var errCorrupt = errors.New("corrupt record")

// appendMessage encodes m (all but Value, which is derived from Payload)
// onto dst: a version byte, then uvarint-prefixed strings and integers.
// Hand-written rather than JSON or protobuf: it runs once per event on the
// ingest path and twice more on the way to the store.
func appendMessage(dst []byte, m *engine.Message) []byte {
	dst = append(dst, codecVersion)
	for _, s := range [...]string{m.ID, m.Name, m.Stream, m.CorrelationID, m.CausationID, m.ContentType} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendUvarint(dst, m.Sequence)
	dst = binary.AppendUvarint(dst, m.Position)
	if m.Time.IsZero() {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = binary.AppendVarint(dst, m.Time.UnixNano())
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Headers)))
	for k, v := range m.Headers {
		dst = appendString(dst, k)
		dst = appendString(dst, v)
	}
	if m.Payload == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(len(m.Payload)))
	return append(dst, m.Payload...)
}

// encodedSizeHint is about what appendMessage writes for m, never less
// than most: a buffer of that size takes the message without growing.
func encodedSizeHint(m *engine.Message) int {
	n := 64 + len(m.ID) + len(m.Name) + len(m.Stream) + len(m.CorrelationID) +
		len(m.CausationID) + len(m.ContentType) + len(m.Payload)
	for k, v := range m.Headers {
		n += 4 + len(k) + len(v)
	}
	return n
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decodeMessage decodes what appendMessage wrote. The message owns its
// memory: bbolt's values are only valid inside their transaction.
func decodeMessage(b []byte) (engine.Message, error) {
	r := reader{b: b}
	if v := r.byte(); v != codecVersion {
		return engine.Message{}, fmt.Errorf("%w: layout version %d, want %d", errCorrupt, v, codecVersion)
	}
	var m engine.Message
	for _, s := range [...]*string{&m.ID, &m.Name, &m.Stream, &m.CorrelationID, &m.CausationID, &m.ContentType} {
		*s = r.string()
	}
	m.Sequence = r.uvarint()
	m.Position = r.uvarint()
	if r.byte() == 1 {
		m.Time = time.Unix(0, r.varint()).UTC()
	}
	if n := r.uvarint(); n > 0 && r.err == nil {
		if n > uint64(len(r.b)) { // each header takes at least two bytes
			return engine.Message{}, fmt.Errorf("%w: %d headers in %d bytes", errCorrupt, n, len(r.b))
		}
		m.Headers = make(map[string]string, n)
		for range n {
			k := r.string()
			m.Headers[k] = r.string()
		}
	}
	if r.byte() == 1 {
		m.Payload = r.bytes(r.uvarint())
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%w: %d bytes after the message", errCorrupt, len(r.b))
	}
	if r.err != nil {
		return engine.Message{}, r.err
	}
	return m, nil
}

// reader consumes an encoded record; the first problem sticks in err and
// every later read returns zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", errCorrupt, what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail("byte")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail("bytes")
		return nil
	}
	out := make([]byte, n)
	copy(out, r.b[:n])
	r.b = r.b[n:]
	return out
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
