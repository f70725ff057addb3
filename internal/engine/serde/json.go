package serde

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	gojson "github.com/goccy/go-json"
)

// jsonDecoder decodes application/json payloads. It holds no state, so it is
// safe for concurrent use.
type jsonDecoder struct{}

// NewJSONDecoder is the Factory for application/json. JSON payloads need no
// schema, so s is ignored and the error is always nil.
func NewJSONDecoder(Schema) (Decoder, error) { return jsonDecoder{}, nil }

// Decode parses exactly one JSON value. Numbers with an integral value that
// fits an int64 become int64 and every other number float64, so an event's
// {"n":1} compares equal to the same event sent as Avro or protobuf.
func (jsonDecoder) Decode(payload []byte) (any, error) { return decodeJSON(payload) }

// Validate checks that payload is exactly one JSON value without building it.
// It checks syntax only, as encoding/json does: a number too large for a
// float64 (1e400) passes Validate and fails Decode. Ingest and Deserialize
// (for a message whose value nothing reads) validate; only a handler that
// reads the value has it decoded.
func (jsonDecoder) Validate(payload []byte) error {
	if json.Valid(payload) {
		return nil
	}
	// Decode says why and where; the two agree on syntax.
	if _, err := decodeJSON(payload); err != nil {
		return err
	}
	return errors.New("json: invalid JSON")
}

// exactFloatDigits is the longest run of digits a float64 always holds
// exactly (2^53 has 16 digits).
const exactFloatDigits = 15

func decodeJSON(payload []byte) (any, error) {
	if skipJSONSpace(payload, 0) == len(payload) {
		return nil, errors.New("json: empty payload: send one JSON value, such as {}")
	}
	if longestDigitRun(payload) > exactFloatDigits {
		return decodeJSONExact(payload)
	}
	// The common case: no number can lose precision as a float64, so a
	// plain Unmarshal is exact. goccy/go-json's is faster than
	// encoding/json's for this (every event of every projection comes
	// through here; docs/performance.md) and agrees with it on what is
	// valid and on the values; FuzzJSONDecodeAgreesWithEncodingJSON keeps
	// that true.
	var v any
	if err := gojson.Unmarshal(payload, &v); err != nil {
		// The exact path words errors better (where the payload ends,
		// trailing data, a number out of range); failures are rare.
		if _, exactErr := decodeJSONExact(payload); exactErr != nil {
			return nil, exactErr
		}
		return nil, jsonSyntaxError(err, len(payload))
	}
	return integralFloatsToInt64(v), nil
}

// decodeJSONExact keeps each number's literal, so integers beyond 2^53
// survive.
func decodeJSONExact(payload []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonSyntaxError(err, len(payload))
	}
	end := int(dec.InputOffset())
	if rest := skipJSONSpace(payload, end); rest < len(payload) {
		return nil, fmt.Errorf(
			"json: unexpected data at byte offset %d after the value that ends at byte offset %d: send exactly one JSON value",
			rest, end)
	}
	return normalizeJSONNumbers(v)
}

// longestDigitRun returns the length of the longest run of ASCII digits in b
// (inside strings too: over-counting only sends a payload down the exact path).
func longestDigitRun(b []byte) int {
	longest, run := 0, 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// integralFloatsToInt64 replaces, in place, every float64 in v whose value is
// a whole number with an int64 (every float here came from at most 15 digits,
// so each is exact).
func integralFloatsToInt64(v any) any {
	switch t := v.(type) {
	case float64:
		if i := int64(t); float64(i) == t && math.Abs(t) < 1<<53 {
			return i
		}
	case map[string]any:
		for k, e := range t {
			switch e.(type) {
			case float64, map[string]any, []any:
				t[k] = integralFloatsToInt64(e)
			}
		}
	case []any:
		for i, e := range t {
			t[i] = integralFloatsToInt64(e)
		}
	}
	return v
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
	// The same rule as the fast path: a whole number in float form
	// (1e2, 2.0) is an int64 too.
	return integralFloatsToInt64(f), nil
}
