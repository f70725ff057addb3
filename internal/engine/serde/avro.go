package serde

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/hamba/avro/v2"
)

// Limits on what one Avro payload may make the decoder allocate. Lengths and
// counts in Avro are written by the sender, so without them a few hostile
// bytes could claim gigabytes.
const (
	// avroMaxBytes bounds one string, bytes or decimal value (hamba's
	// Config.MaxByteSliceSize, enforced by its Reader).
	avroMaxBytes = 8 << 20
	// avroMaxItems bounds the array items plus map entries in one payload.
	// hamba's Config.MaxSliceAllocSize bounds one slice only, which does not
	// stop an array of arrays of nulls (items that take no bytes) from
	// multiplying a short payload into billions of values; this budget does.
	avroMaxItems = 1 << 20
	// avroMaxDepth bounds the nesting of records, arrays, maps and unions, so
	// that a recursive schema cannot be driven into a stack overflow.
	avroMaxDepth = 256
)

// avroConfig is shared by every Avro decoder: it is immutable, and the walker
// reads through an avro.Reader, which is what enforces MaxByteSliceSize.
var avroConfig = avro.Config{MaxByteSliceSize: avroMaxBytes}.Freeze()

// avroDecoder decodes application/avro payloads written with one schema.
type avroDecoder struct {
	schema avro.Schema
	// readers are reused between payloads; a Reader's scratch memory is only
	// ever handed out once, so strings from earlier payloads stay valid.
	readers sync.Pool
}

// NewAvroDecoder is the Factory for application/avro. It parses s.Avro once;
// a missing or unparsable schema is ErrInvalidSchema with the parser's message.
//
// Decode turns a single Avro datum (no container file header, no Confluent
// schema-id prefix) into JSON-compatible values: records and maps become
// map[string]any, arrays []any, int and long int64, float and double float64
// (NaN and infinities become the strings "NaN", "Infinity" and "-Infinity", as
// in protobuf's JSON mapping), enums their symbol, and a union the value of its
// branch (not {"type": value}). bytes and fixed become standard base64 strings,
// as JSON has no binary type. Logical types: timestamp-* RFC 3339 strings in
// UTC, local-timestamp-* the same without a zone, date "2006-01-02", time-*
// "15:04:05.000" (or microseconds), decimal an exact decimal string such as
// "12.30", duration {"months","days","milliseconds"}, uuid the string.
func NewAvroDecoder(s Schema) (Decoder, error) {
	if strings.TrimSpace(s.Avro) == "" {
		return nil, fmt.Errorf("%w: application/avro needs an Avro schema; set the stream's Avro schema", ErrInvalidSchema)
	}
	// A cache of its own keeps one stream's named types from leaking into, or
	// clashing with, another stream's schema.
	schema, err := avro.ParseWithCache(s.Avro, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("%w: the Avro schema does not parse: %w", ErrInvalidSchema, err)
	}
	return &avroDecoder{schema: schema}, nil
}

// Decode decodes one datum and rejects any bytes after it.
func (d *avroDecoder) Decode(payload []byte) (any, error) {
	r, _ := d.readers.Get().(*avro.Reader)
	if r == nil {
		r = avro.NewReader(nil, 0, avro.WithReaderConfig(avroConfig))
	}
	defer func() {
		r.Reset(nil) // do not keep the payload alive in the pool
		d.readers.Put(r)
	}()
	r.Error = nil
	r.Reset(payload)

	w := avroWalker{r: r, items: avroMaxItems}
	v, err := w.read(d.schema, 0)
	if err != nil {
		return nil, fmt.Errorf("avro: payload does not match the stream's schema: %w", err)
	}
	r.Peek()
	if r.Error == nil {
		return nil, errors.New("avro: unexpected bytes after the datum: send exactly one value encoded with the stream's schema")
	}
	if !errors.Is(r.Error, io.EOF) {
		return nil, fmt.Errorf("avro: %w", r.Error)
	}
	return v, nil
}
