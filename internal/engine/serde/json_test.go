package serde

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestJSONDecodeGivesWholeNumbersAsInt64AndOtherNumbersAsFloat64(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    any
	}{
		{"item", `{"foo":"a","n":1}`, map[string]any{"foo": "a", "n": int64(1)}},
		{"large integer keeps its digits", `9007199254740993`, int64(9007199254740993)},
		{"negative integer", `-42`, int64(-42)},
		{"fraction", `1.5`, 1.5},
		{"whole number in exponent form is an int64", `1e2`, int64(100)},
		{"whole number with a fraction part is an int64", `[2.0]`, []any{int64(2)}},
		{"exponent giving a fraction is a float", `15e-1`, 1.5},
		{"long fraction keeps float precision", `0.1234567890123456789`, 0.1234567890123456789},
		{"integer beyond int64 is a float", `18446744073709551616`, 18446744073709551616.0},
		{"nested arrays and objects", `{"a":[1,2.5,{"b":null}],"c":true}`,
			map[string]any{"a": []any{int64(1), 2.5, map[string]any{"b": nil}}, "c": true}},
		{"surrounding whitespace", " \n\t\"x\" \r\n", "x"},
		{"null", `null`, nil},
		{"empty object", `{}`, map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jsonDecoder{}.Decode([]byte(tt.payload))
			if err != nil {
				t.Fatalf("Decode(%q) error: %v", tt.payload, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%q) = %#v, want %#v", tt.payload, got, tt.want)
			}
			checkJSONCompatible(t, got)
		})
	}
}

func TestJSONDecodeRejectsBadPayloadsSayingWhere(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    []string
	}{
		{"empty body", ``, []string{"empty payload"}},
		{"only whitespace", " \n ", []string{"empty payload"}},
		{"invalid character", `{"a":x}`, []string{"byte offset 5", "invalid character 'x'"}},
		{"truncated object", `{"a":1`, []string{"byte offset 6", "ends"}},
		{"trailing value", `{} {}`, []string{"byte offset 3", "exactly one JSON value"}},
		{"trailing garbage after number", `123abc`, []string{"byte offset 3"}},
		{"number out of float range", `[1e400]`, []string{"1e400", "64-bit float"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jsonDecoder{}.Decode([]byte(tt.payload))
			if err == nil {
				t.Fatalf("Decode(%q) = %#v, want an error", tt.payload, got)
			}
			wantErr(t, err, tt.want...)
		})
	}
}

func TestJSONValidateAcceptsWellFormedPayloadsAndSaysWhereOthersBreak(t *testing.T) {
	if err := (jsonDecoder{}).Validate([]byte(` {"foo":"a","n":1} `)); err != nil {
		t.Errorf("Validate(item) = %v, want nil", err)
	}
	err := jsonDecoder{}.Validate([]byte(`{"foo":`))
	if err == nil || !strings.Contains(err.Error(), "byte offset") {
		t.Errorf("Validate(truncated) = %v, want an error that says where", err)
	}
	if err := (jsonDecoder{}).Validate(nil); err == nil {
		t.Error("Validate(empty) = nil, want an error")
	}
}

func TestSetValidateUsesTheCheapCheckAndStillRefusesOtherTypes(t *testing.T) {
	set, err := NewRegistry().ForStream([]string{JSON}, Schema{})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Validate("application/json; charset=utf-8", []byte(`[1]`)); err != nil {
		t.Errorf("Validate(JSON) = %v, want nil", err)
	}
	if err := set.Validate(Avro, []byte{2}); !errors.Is(err, ErrUnsupportedContentType) {
		t.Errorf("Validate(avro on a JSON stream) = %v, want ErrUnsupportedContentType", err)
	}
}
