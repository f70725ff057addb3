package serde

import (
	"errors"
	"reflect"
	"testing"
)

func TestForStreamReportsABadSchemaNamingTheContentType(t *testing.T) {
	tests := []struct {
		name   string
		types  []string
		schema Schema
		want   []string
	}{
		{"avro without a schema", []string{JSON, Avro}, Schema{}, []string{"application/avro:", "needs an Avro schema"}},
		{"avro schema that does not parse", []string{Avro}, Schema{Avro: `{"type":"record"}`}, []string{"application/avro:", "does not parse"}},
		{"unknown protobuf type", []string{Protobuf}, Schema{ProtobufMessageType: "shop.v1.Item"},
			[]string{"application/x-protobuf:", `"shop.v1.Item"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRegistry().ForStream(tt.types, tt.schema)
			if !errors.Is(err, ErrInvalidSchema) {
				t.Fatalf("got error %v, want one wrapping ErrInvalidSchema", err)
			}
			wantErr(t, err, tt.want...)
		})
	}
}

func TestForStreamRejectsAnUnregisteredContentType(t *testing.T) {
	_, err := NewRegistry().ForStream([]string{JSON, "text/plain"}, Schema{})
	if !errors.Is(err, ErrUnsupportedContentType) {
		t.Fatalf("got error %v, want one wrapping ErrUnsupportedContentType", err)
	}
	wantErr(t, err, `"text/plain"`)
}

func TestForStreamWithNoContentTypesAcceptsJSON(t *testing.T) {
	set, err := NewRegistry().ForStream(nil, Schema{})
	if err != nil {
		t.Fatalf("ForStream(nil) error: %v", err)
	}
	if got, want := set.ContentTypes(), []string{JSON}; !reflect.DeepEqual(got, want) {
		t.Errorf("ContentTypes() = %q, want %q", got, want)
	}
}

func TestSetContentTypesAreNormalizedSortedAndUnique(t *testing.T) {
	set, err := NewRegistry().ForStream([]string{"application/x-protobuf", "Application/JSON", "application/json; charset=utf-8"},
		Schema{ProtobufMessageType: "google.protobuf.Struct"})
	if err != nil {
		t.Fatalf("ForStream error: %v", err)
	}
	want := []string{JSON, Protobuf}
	got := set.ContentTypes()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ContentTypes() = %q, want %q", got, want)
	}
	got[0] = "changed"
	if again := set.ContentTypes(); !reflect.DeepEqual(again, want) {
		t.Errorf("after changing the returned slice, ContentTypes() = %q, want %q", again, want)
	}
}

func TestSetDecodesEachAcceptedContentTypeToTheSameValue(t *testing.T) {
	set, err := NewRegistry().ForStream([]string{JSON, Avro, Protobuf},
		Schema{Avro: itemSchema, ProtobufMessageType: "google.protobuf.Struct"})
	if err != nil {
		t.Fatalf("ForStream error: %v", err)
	}
	want := map[string]any{"foo": "a", "n": int64(1)}
	payloads := map[string][]byte{
		"application/json; charset=utf-8": []byte(`{"foo":"a","n":1}`),
		"Application/Avro":                encodeAvro(t, itemSchema, map[string]any{"foo": "a", "n": 1}),
		Protobuf:                          marshalProto(t, mustStruct(t, map[string]any{"foo": "a", "n": 1})),
	}
	for ct, payload := range payloads {
		if !set.Accepts(ct) {
			t.Errorf("Accepts(%q) = false, want true", ct)
		}
		got, err := set.Decode(ct, payload)
		if err != nil {
			t.Errorf("Decode(%q) error: %v", ct, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%q) = %#v, want %#v", ct, got, want)
		}
	}
}

func TestSetDecodeRejectsAContentTypeTheStreamDoesNotAccept(t *testing.T) {
	set, err := NewRegistry().ForStream([]string{JSON, Avro}, Schema{Avro: itemSchema})
	if err != nil {
		t.Fatalf("ForStream error: %v", err)
	}
	if set.Accepts(Protobuf) {
		t.Errorf("Accepts(%q) = true, want false", Protobuf)
	}
	_, err = set.Decode(Protobuf, []byte{})
	if !errors.Is(err, ErrUnsupportedContentType) {
		t.Fatalf("got error %v, want one wrapping ErrUnsupportedContentType", err)
	}
	wantErr(t, err, `"application/x-protobuf"`, "this stream accepts application/avro, application/json")
}
