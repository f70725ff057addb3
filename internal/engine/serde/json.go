package serde

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// jsonDecoder decodes application/json payloads. It holds no state, so it is
// safe for concurrent use.
type jsonDecoder struct{}

// NewJSONDecoder is the Factory for application/json. JSON payloads need no
// schema, so s is ignored and the error is always nil.
func NewJSONDecoder(Schema) (Decoder, error) { return jsonDecoder{}, nil }

// Decode parses exactly one JSON value. Integers that fit an int64 become
// int64 and every other number float64, so an event's {"n":1} compares equal to
// the same event sent as Avro or protobuf.
func (jsonDecoder) Decode(payload []byte) (any, error) { return decodeJSON(payload) }

func decodeJSON(payload []byte) (any, error) {
	if skipJSONSpace(payload, 0) == len(payload) {
		return nil, errors.New("json: empty payload: send one JSON value, such as {}")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	// UseNumber keeps the literal so that integers beyond 2^53 survive.
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonSyntaxError(err, len(payload))
	}
	end := int(dec.InputOffset())
	if rest := skipJSONSpace(payload, end); rest < len(payload) {
		return nil, fmt.Errorf("json: unexpected data at byte offset %d after the value that ends at byte offset %d: send exactly one JSON value", rest, end)
	}
	return normalizeJSONNumbers(v)
}

// jsonSyntaxError says where a payload stopped being JSON.
func jsonSyntaxError(err error, size int) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		// Offset counts the bytes read, including the offending one.
		return fmt.Errorf("json: invalid JSON at byte offset %d: %w", max(syn.Offset-1, 0), err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("json: payload ends at byte offset %d in the middle of a value: %w", size, io.ErrUnexpectedEOF)
	default:
		return fmt.Errorf("json: %w", err)
	}
}

// skipJSONSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// normalizeJSONNumbers replaces every json.Number in v, in place, with an int64
// or a float64.
func normalizeJSONNumbers(v any) (any, error) {
	switch t := v.(type) {
	case json.Number:
		return jsonNumber(t)
	case map[string]any:
		for k, e := range t {
			n, err := normalizeJSONNumbers(e)
			if err != nil {
				return nil, err
			}
			t[k] = n
		}
	case []any:
		for i, e := range t {
			n, err := normalizeJSONNumbers(e)
			if err != nil {
				return nil, err
			}
			t[i] = n
		}
	}
	return v, nil
}

func jsonNumber(n json.Number) (any, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return nil, fmt.Errorf("json: number %s does not fit a 64-bit float", n)
	}
	return f, nil
}
