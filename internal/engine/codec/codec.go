// Package codec is the binary encoding of engine.Message that the disk
// engines store: the outbox log's entries and the bbolt file's events.
// Hand-written rather than JSON or protobuf: it runs once per event on the
// ingest path and twice more on the way to the store.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// version leads every encoded message, so a later layout can tell old
// records from new ones instead of misreading them. Layout 1 had no key
// and no version; it is still read.
const (
	version       = 2
	versionNoKeys = 1
)

// ErrCorrupt says a stored record does not decode: the file was damaged or
// written by something else.
var ErrCorrupt = errors.New("corrupt record")

// AppendMessage encodes m (all but Value, which is derived from Payload)
// onto dst: a version byte, then uvarint-prefixed strings and integers.
func AppendMessage(dst []byte, m *engine.Message) []byte {
	dst = append(dst, version)
	for _, s := range [...]string{m.ID, m.Name, m.Stream, m.CorrelationID, m.CausationID, m.ContentType} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendUvarint(dst, m.Sequence)
	dst = binary.AppendUvarint(dst, m.Position)
	dst = appendString(dst, m.Key)
	dst = binary.AppendUvarint(dst, m.Version)
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

// SizeHint is about what AppendMessage writes for m, never less than most:
// a buffer of that size takes the message without growing.
func SizeHint(m *engine.Message) int {
	n := 80 + len(m.Key) + len(m.ID) + len(m.Name) + len(m.Stream) + len(m.CorrelationID) +
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

// DecodeMessage decodes what AppendMessage wrote. The message owns its
// memory: a bbolt value is only valid inside its transaction.
func DecodeMessage(b []byte) (engine.Message, error) {
	r := NewReader(b)
	layout := r.Byte()
	if layout != version && layout != versionNoKeys {
		return engine.Message{}, fmt.Errorf("%w: layout version %d, want %d", ErrCorrupt, layout, version)
	}
	var m engine.Message
	for _, s := range [...]*string{&m.ID, &m.Name, &m.Stream, &m.CorrelationID, &m.CausationID, &m.ContentType} {
		*s = r.String()
	}
	m.Sequence = r.Uvarint()
	m.Position = r.Uvarint()
	if layout == version {
		m.Key = r.String()
		m.Version = r.Uvarint()
	}
	if r.Byte() == 1 {
		m.Time = time.Unix(0, r.Varint()).UTC()
	}
	if n := r.Uvarint(); n > 0 && r.Err() == nil {
		if n > uint64(r.Len()) { // each header takes at least two bytes
			return engine.Message{}, fmt.Errorf("%w: %d headers in %d bytes", ErrCorrupt, n, r.Len())
		}
		m.Headers = make(map[string]string, n)
		for range n {
			k := r.String()
			m.Headers[k] = r.String()
		}
	}
	if r.Byte() == 1 {
		m.Payload = r.Bytes(r.Uvarint())
	}
	if err := r.End("the message"); err != nil {
		return engine.Message{}, err
	}
	return m, nil
}

// MessageID returns the ID of an encoded message (its first field) without
// decoding the rest; it shares b's memory.
func MessageID(b []byte) ([]byte, error) {
	if len(b) == 0 || (b[0] != version && b[0] != versionNoKeys) {
		return nil, fmt.Errorf("%w: not a message of layout version %d", ErrCorrupt, version)
	}
	n, w := binary.Uvarint(b[1:])
	if w <= 0 || n > uint64(len(b)-1-w) {
		return nil, fmt.Errorf("%w: bad id length", ErrCorrupt)
	}
	return b[1+w : 1+w+int(n)], nil
}

// MessageKey returns the Key (sharing b's memory) and Version of an
// encoded message without decoding the rest; a layout-1 record has
// neither.
func MessageKey(b []byte) ([]byte, uint64, error) {
	r := NewReader(b)
	layout := r.Byte()
	if layout != version && layout != versionNoKeys {
		return nil, 0, fmt.Errorf("%w: not a message of layout version %d", ErrCorrupt, version)
	}
	for range 6 { // ID, Name, Stream, CorrelationID, CausationID, ContentType
		r.Slice(r.Uvarint())
	}
	r.Uvarint() // Sequence
	r.Uvarint() // Position
	if layout == versionNoKeys {
		return nil, 0, r.Err()
	}
	key := r.Slice(r.Uvarint())
	v := r.Uvarint()
	return key, v, r.Err()
}
