package serde

import (
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
)

const itemSchema = `{"type":"record","name":"Item","fields":[
	{"name":"foo","type":"string"},{"name":"n","type":"int"}]}`

// encodeAvro writes v with hamba's encoder, the way a producer would.
func encodeAvro(t testing.TB, schema string, v any) []byte {
	t.Helper()
	s, err := avro.Parse(schema)
	if err != nil {
		t.Fatalf("parse test schema: %v", err)
	}
	b, err := avro.Marshal(s, v)
	if err != nil {
		t.Fatalf("encode test payload: %v", err)
	}
	return b
}

func newAvro(t testing.TB, schema string) Decoder {
	t.Helper()
	d, err := NewAvroDecoder(Schema{Avro: schema})
	if err != nil {
		t.Fatalf("NewAvroDecoder: %v", err)
	}
	return d
}

// zz is Avro's zig-zag varint encoding of n (encoding/binary uses the same).
func zz(n int64) []byte { return binary.AppendVarint(nil, n) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestAvroDecodeGivesJSONCompatibleValues(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 6e6, time.UTC)
	tests := []struct {
		name   string
		schema string
		value  any
		want   any
	}{
		{"item record", itemSchema, map[string]any{"foo": "a", "n": 1},
			map[string]any{"foo": "a", "n": int64(1)}},
		{"primitives", `{"type":"record","name":"P","fields":[
			{"name":"b","type":"boolean"},{"name":"l","type":"long"},{"name":"f","type":"float"},
			{"name":"d","type":"double"},{"name":"raw","type":"bytes"},{"name":"z","type":"null"}]}`,
			map[string]any{"b": true, "l": int64(math.MaxInt64), "f": float32(0.1), "d": 2.5, "raw": []byte("hi"), "z": nil},
			map[string]any{"b": true, "l": int64(math.MaxInt64), "f": 0.1, "d": 2.5, "raw": "aGk=", "z": nil}},
		{"enum is its symbol", `{"type":"enum","name":"Color","symbols":["RED","GREEN"]}`, "GREEN", "GREEN"},
		{"union is the plain value", `["null","string"]`, map[string]any{"string": "x"}, "x"},
		{"union null", `["null","string"]`, nil, nil},
		{"union of record", `["int",` + itemSchema + `]`, map[string]any{"Item": map[string]any{"foo": "b", "n": 2}},
			map[string]any{"foo": "b", "n": int64(2)}},
		{"array", `{"type":"array","items":"int"}`, []int{1, 2, 3}, []any{int64(1), int64(2), int64(3)}},
		{"map", `{"type":"map","values":"long"}`, map[string]any{"a": int64(1)}, map[string]any{"a": int64(1)}},
		{"fixed is base64", `{"type":"fixed","name":"F","size":3}`, [3]byte{1, 2, 3}, "AQID"},
		{"timestamp-millis", `{"type":"long","logicalType":"timestamp-millis"}`, ts, "2024-01-02T03:04:05.006Z"},
		{"timestamp-micros", `{"type":"long","logicalType":"timestamp-micros"}`, ts, "2024-01-02T03:04:05.006Z"},
		{"local-timestamp-millis", `{"type":"long","logicalType":"local-timestamp-millis"}`, ts, "2024-01-02T03:04:05.006"},
		{"date", `{"type":"int","logicalType":"date"}`, ts.Truncate(24 * time.Hour), "2024-01-02"},
		{"time-millis", `{"type":"int","logicalType":"time-millis"}`, 3*time.Hour + 4*time.Minute + 5006*time.Millisecond, "03:04:05.006"},
		{"time-micros", `{"type":"long","logicalType":"time-micros"}`, 1500 * time.Microsecond, "00:00:00.001500"},
		{"decimal is an exact string", `{"type":"bytes","logicalType":"decimal","precision":6,"scale":2}`, big.NewRat(-1230, 100), "-12.30"},
		{"uuid is a string", `{"type":"string","logicalType":"uuid"}`,
			"0190a4c3-5f7a-7b5e-9d2a-1c2b3d4e5f60", "0190a4c3-5f7a-7b5e-9d2a-1c2b3d4e5f60"},
		{"recursive schema", `{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}`,
			map[string]any{"v": 1, "next": map[string]any{"Node": map[string]any{"v": 2, "next": nil}}},
			map[string]any{"v": int64(1), "next": map[string]any{"v": int64(2), "next": nil}}},
		{"NaN becomes a string", `"double"`, math.NaN(), "NaN"},
		{"infinity becomes a string", `"float"`, float32(math.Inf(-1)), "-Infinity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newAvro(t, tt.schema).Decode(encodeAvro(t, tt.schema, tt.value))
			if err != nil {
				t.Fatalf("Decode error: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode = %#v, want %#v", got, tt.want)
			}
			checkJSONCompatible(t, got)
		})
	}
}

func TestAvroDecodeDurationIsMonthsDaysMilliseconds(t *testing.T) {
	schema := `{"type":"fixed","name":"D","size":12,"logicalType":"duration"}`
	payload := make([]byte, 12)
	binary.LittleEndian.PutUint32(payload[0:], 1)
	binary.LittleEndian.PutUint32(payload[4:], 2)
	binary.LittleEndian.PutUint32(payload[8:], 3)
	got, err := newAvro(t, schema).Decode(payload)
	if err != nil {
		t.Fatalf("Decode error: %v", err)
	}
	want := map[string]any{"months": int64(1), "days": int64(2), "milliseconds": int64(3)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode = %#v, want %#v", got, want)
	}
}

func TestAvroDecodeRejectsBadPayloadsSayingWhy(t *testing.T) {
	const (
		listSchema   = `{"type":"record","name":"L","fields":[{"name":"items","type":{"type":"array","items":` + itemSchema + `}}]}`
		nullsSchema  = `{"type":"array","items":{"type":"array","items":"null"}}`
		nodeSchema   = `{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}`
		decSchema    = `{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}`
		timeSchema   = `{"type":"int","logicalType":"time-millis"}`
		colorSchema  = `{"type":"enum","name":"Color","symbols":["RED","GREEN"]}`
		stringsArray = `{"type":"array","items":"string"}`
	)
	item := encodeAvro(t, itemSchema, map[string]any{"foo": "abc", "n": 7})
	// Two items, the second one cut short in its string.
	truncatedList := cat(zz(2), zz(1), []byte("a"), zz(1), zz(3), []byte("ab"))
	nullBlocks := zz(600) // 600 inner arrays each claiming 100k nulls: 60M values from ~2 KiB
	for range 600 {
		nullBlocks = append(nullBlocks, cat(zz(100_000), zz(0))...)
	}
	nullBlocks = append(nullBlocks, 0)
	deep := make([]byte, 1000)
	for i := range deep {
		deep[i] = 2 // union branch 1 (Node) at every level
	}

	tests := []struct {
		name    string
		schema  string
		payload []byte
		want    []string
	}{
		{"empty payload", itemSchema, nil, []string{"at foo", "ends too early"}},
		{"truncated field", itemSchema, item[:3], []string{"at foo", "ends too early"}},
		{"truncated inside an array", listSchema, truncatedList, []string{"at items[1].foo", "ends too early"}},
		{"trailing bytes", itemSchema, append(item, 0), []string{"unexpected bytes after the datum"}},
		{"enum index out of range", colorSchema, zz(7), []string{"enum Color has no symbol 7"}},
		{"union branch out of range", `["null","string"]`, zz(5), []string{"union has no branch 5"}},
		{"negative string length", `"string"`, zz(-3), []string{"reading string", "invalid string length"}},
		{"hostile string length", `"string"`, zz(1 << 40), []string{"MaxByteSliceSize"}},
		{"hostile array count", stringsArray, zz(1 << 40), []string{"array block claims 1099511627776 items"}},
		{"most negative block count", stringsArray, zz(math.MinInt64), []string{"array block"}},
		{"nulls multiplied by nesting", nullsSchema, nullBlocks, []string{"at most 1048576"}},
		{"nesting beyond the depth limit", nodeSchema, deep, []string{"nested more than 256 deep"}},
		{"invalid UTF-8 string", `"string"`, cat(zz(2), []byte{0xff, 0xfe}), []string{"not valid UTF-8"}},
		{"decimal longer than its precision", decSchema, cat(zz(8), make([]byte, 8)), []string{"exceeds precision 4"}},
		{"time-millis outside a day", timeSchema, zz(-1), []string{"time-millis -1 is not a time of day"}},
		{"invalid boolean", `"boolean"`, []byte{2}, []string{"invalid bool"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newAvro(t, tt.schema).Decode(tt.payload)
			if err == nil {
				t.Fatalf("Decode = %#v, want an error", got)
			}
			wantErr(t, err, tt.want...)
		})
	}
}

func TestNewAvroDecoderReportsSchemaProblems(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		want   []string
	}{
		{"missing schema", "  ", []string{"needs an Avro schema"}},
		{"unknown type", `{"type":"record","name":"Item","fields":[{"name":"foo","type":"strin"}]}`,
			[]string{"does not parse", "strin"}},
		{"not JSON", `{"type":`, []string{"does not parse"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAvroDecoder(Schema{Avro: tt.schema})
			if !errors.Is(err, ErrInvalidSchema) {
				t.Fatalf("got error %v, want one wrapping ErrInvalidSchema", err)
			}
			wantErr(t, err, tt.want...)
		})
	}
}

func TestAvroSchemasOfDifferentStreamsDoNotClash(t *testing.T) {
	// Two streams may each define their own record named Item.
	other := `{"type":"record","name":"Item","fields":[{"name":"id","type":"long"}]}`
	a, b := newAvro(t, itemSchema), newAvro(t, other)
	got, err := b.Decode(zz(9))
	if err != nil || !reflect.DeepEqual(got, map[string]any{"id": int64(9)}) {
		t.Fatalf("second stream Decode = %#v, %v; want map[id:9]", got, err)
	}
	got, err = a.Decode(encodeAvro(t, itemSchema, map[string]any{"foo": "a", "n": 1}))
	if want := map[string]any{"foo": "a", "n": int64(1)}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("first stream Decode = %#v, %v; want %#v", got, err, want)
	}
}
