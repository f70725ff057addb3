package serde

import "testing"

// The item payload {"foo":"a","n":1} in each wire format.

func BenchmarkDecodeJSON(b *testing.B) {
	benchmarkDecode(b, jsonDecoder{}, []byte(`{"foo":"a","n":1}`))
}

func BenchmarkDecodeAvro(b *testing.B) {
	benchmarkDecode(b, newAvro(b, itemSchema), encodeAvro(b, itemSchema, map[string]any{"foo": "a", "n": 1}))
}

func BenchmarkDecodeProtobufStruct(b *testing.B) {
	d := newProtobuf(b, Schema{ProtobufMessageType: "google.protobuf.Struct"})
	benchmarkDecode(b, d, marshalProto(b, mustStruct(b, map[string]any{"foo": "a", "n": 1})))
}

func benchmarkDecode(b *testing.B, d Decoder, payload []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := d.Decode(payload); err != nil {
			b.Fatal(err)
		}
	}
}
