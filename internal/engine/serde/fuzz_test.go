package serde

import (
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"testing"
	"time"
)

// Fuzz targets: whatever the bytes, Decode returns an error or a
// JSON-compatible value, and never panics.

func FuzzJSONDecode(f *testing.F) {
	for _, seed := range []string{
		`{"foo":"a","n":1}`, `[1,2.5,-3e10,null,true]`, `"\u00e9"`, `9223372036854775808`,
		``, ` `, `{"a":`, `{} {}`, `1e400`, `[[[[[]]]]]`, "\xff", `{"a":"\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		v, err := jsonDecoder{}.Decode(payload)
		if err != nil {
			return
		}
		checkJSONCompatible(t, v)
		if !json.Valid(payload) {
			t.Fatalf("Decode(%q) succeeded, but encoding/json says it is not valid JSON", payload)
		}
	})
}

// The fast JSON path uses goccy/go-json; encoding/json is the reference. Both
// must accept the same payloads and give the same values (after the decoder's
// int64 rule, which the exact path applies to encoding/json's numbers).
func FuzzJSONDecodeAgreesWithEncodingJSON(f *testing.F) {
	for _, seed := range []string{
		`{"foo":"a","n":1}`, `[1,2.5,-3e10,null,true]`, `"\u00e9"`, `{"a":1,"a":2}`, `-0`, `01`, `1.`,
		`"\/"`, `[1,]`, "\"\xff\"", `{"a":"\x01"}`, `"\ud800"`, `{"a" :  true }`, `0.1234567890123456789`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, err := decodeJSON(payload)
		want, wantErr := decodeJSONExact(payload)
		if wantErr == nil && skipJSONSpace(payload, 0) == len(payload) {
			wantErr = errors.New("empty")
		}
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decodeJSON(%q) error = %v, encoding/json error = %v: want both or neither", payload, err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeJSON(%q) = %#v, encoding/json gives %#v", payload, got, want)
		}
		// Validate checks syntax only: it agrees with json.Valid, and
		// accepts whatever decodes.
		verr := jsonDecoder{}.Validate(payload)
		if (verr == nil) != json.Valid(payload) {
			t.Fatalf("Validate(%q) = %v, json.Valid = %v: want them to agree", payload, verr, json.Valid(payload))
		}
		if err == nil && verr != nil {
			t.Fatalf("Validate(%q) = %v, but the payload decodes", payload, verr)
		}
	})
}

// fuzzAvroSchema exercises every Avro type the decoder walks.
const fuzzAvroSchema = `{"type":"record","name":"Event","fields":[
	{"name":"id","type":"long"},
	{"name":"name","type":["null","string"]},
	{"name":"ok","type":"boolean"},
	{"name":"score","type":"float"},
	{"name":"ratio","type":"double"},
	{"name":"raw","type":"bytes"},
	{"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B","C"]}},
	{"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
	{"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
	{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"day","type":{"type":"int","logicalType":"date"}},
	{"name":"tags","type":{"type":"array","items":"string"}},
	{"name":"counts","type":{"type":"map","values":"int"}},
	{"name":"nulls","type":{"type":"array","items":{"type":"array","items":"null"}}},
	{"name":"next","type":["null","Event"]}]}`

func FuzzAvroDecode(f *testing.F) {
	d, err := NewAvroDecoder(Schema{Avro: fuzzAvroSchema})
	if err != nil {
		f.Fatalf("NewAvroDecoder: %v", err)
	}
	event := func(next any) map[string]any {
		return map[string]any{
			"id": int64(1), "name": map[string]any{"string": "a"}, "ok": true, "score": float32(0.5), "ratio": 2.5,
			"raw": []byte{1, 2}, "kind": "B", "hash": [4]byte{1, 2, 3, 4}, "price": big.NewRat(1234, 100),
			"at": time.UnixMilli(1700000000000), "day": time.Unix(0, 0), "tags": []string{"x"},
			"counts": map[string]any{"k": 3}, "nulls": []any{[]any{nil, nil}}, "next": next,
		}
	}
	leaf := encodeAvro(f, fuzzAvroSchema, event(nil))
	f.Add(leaf)
	f.Add(encodeAvro(f, fuzzAvroSchema, event(map[string]any{"Event": event(nil)})))
	f.Add(leaf[:len(leaf)/2])
	f.Add(append(leaf, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		v, err := d.Decode(payload)
		if err != nil {
			return
		}
		checkJSONCompatible(t, v)
	})
}

func FuzzProtobufDecode(f *testing.F) {
	structs := newProtobuf(f, Schema{ProtobufMessageType: "google.protobuf.Struct"})
	set, md := itemDescriptorSet(f)
	items := newProtobuf(f, Schema{ProtobufMessageType: "shop.v1.Item", ProtobufDescriptorSet: set})

	s := marshalProto(f, mustStruct(f, map[string]any{"foo": "a", "n": 1, "l": []any{true, nil}, "o": map[string]any{"x": "y"}}))
	item := newItem(f, md, "a", 1)
	for _, seed := range [][]byte{s, s[:len(s)-1], item, item[:len(item)-2], {}, {0xff}} {
		f.Add(false, seed)
		f.Add(true, seed)
	}
	f.Fuzz(func(t *testing.T, userType bool, payload []byte) {
		d := structs
		if userType {
			d = items
		}
		v, err := d.Decode(payload)
		if err != nil {
			return
		}
		checkJSONCompatible(t, v)
	})
}
