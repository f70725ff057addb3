package serde

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

func TestNewRegistryRegistersJSONAvroAndProtobuf(t *testing.T) {
	r := NewRegistry()
	want := []string{Avro, JSON, Protobuf} // sorted
	if got := r.ContentTypes(); !reflect.DeepEqual(got, want) {
		t.Errorf("ContentTypes() = %q, want %q", got, want)
	}
	for _, ct := range want {
		if !r.Registered(ct) {
			t.Errorf("Registered(%q) = false, want true", ct)
		}
	}
	if r.Registered("text/plain") {
		t.Error(`Registered("text/plain") = true, want false`)
	}
}

func TestNormalizeContentTypeLowercasesAndStripsParameters(t *testing.T) {
	tests := []struct{ in, want string }{
		{"application/json", "application/json"},
		{"Application/JSON; charset=utf-8", "application/json"},
		{"  application/avro  ", "application/avro"},
		{"application/x-protobuf ;proto=shop.v1.Item", "application/x-protobuf"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := NormalizeContentType(tt.in); got != tt.want {
			t.Errorf("NormalizeContentType(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRegistryDecoderRejectsUnregisteredContentTypeListingTheRegisteredOnes(t *testing.T) {
	_, err := NewRegistry().Decoder("text/plain", Schema{})
	if !errors.Is(err, ErrUnsupportedContentType) {
		t.Fatalf("got error %v, want one wrapping ErrUnsupportedContentType", err)
	}
	wantErr(t, err, `"text/plain"`, "application/avro, application/json, application/x-protobuf")
}

func TestRegistryDecoderNamesTheContentTypeOfAnInvalidSchema(t *testing.T) {
	_, err := NewRegistry().Decoder("Application/Avro", Schema{Avro: `{"type":"nope"}`})
	if !errors.Is(err, ErrInvalidSchema) {
		t.Fatalf("got error %v, want one wrapping ErrInvalidSchema", err)
	}
	wantErr(t, err, "application/avro:", "does not parse")
}

func TestRegistryDecoderWrapsAnyFactoryErrorAsInvalidSchema(t *testing.T) {
	r := NewRegistry()
	cause := errors.New("needs a table name")
	r.Register("text/csv", func(Schema) (Decoder, error) { return nil, cause })
	_, err := r.Decoder("text/csv", Schema{})
	if !errors.Is(err, ErrInvalidSchema) || !errors.Is(err, cause) {
		t.Fatalf("got error %v, want one wrapping ErrInvalidSchema and the factory's error", err)
	}
	wantErr(t, err, "text/csv", "needs a table name")
}

// decoderFunc adapts a function to Decoder for tests.
type decoderFunc func([]byte) (any, error)

func (f decoderFunc) Decode(b []byte) (any, error) { return f(b) }

func TestRegisterReplacesTheFactoryForANormalizedContentType(t *testing.T) {
	r := NewRegistry()
	r.Register("Application/JSON; charset=utf-8", func(Schema) (Decoder, error) {
		return decoderFunc(func(_ []byte) (any, error) { return "replaced", nil }), nil
	})
	d, err := r.Decoder(JSON, Schema{})
	if err != nil {
		t.Fatalf("Decoder error: %v", err)
	}
	if got, _ := d.Decode([]byte(`{}`)); got != "replaced" {
		t.Errorf("Decode = %#v, want the replacement decoder's %q", got, "replaced")
	}
	if got := len(r.ContentTypes()); got != 3 {
		t.Errorf("len(ContentTypes()) = %d, want 3 (replaced, not added)", got)
	}
}

func TestRegisterPanicsOnProgrammingErrors(t *testing.T) {
	tests := []struct {
		name string
		ct   string
		f    Factory
	}{
		{"empty content type", " ; charset=utf-8", NewJSONDecoder},
		{"nil factory", "text/csv", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q, %v) did not panic", tt.ct, tt.f != nil)
				}
			}()
			NewRegistry().Register(tt.ct, tt.f)
		})
	}
}

func TestRegistryIsSafeForConcurrentUse(t *testing.T) {
	r := NewRegistry()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			r.Register(fmt.Sprintf("application/x-test-%d", i), NewJSONDecoder)
		})
		wg.Go(func() {
			set, err := r.ForStream([]string{JSON}, Schema{})
			if err == nil {
				_, err = set.Decode(JSON, []byte(`{"n":1}`))
			}
			if err != nil {
				errs <- err
			}
			_ = r.ContentTypes()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent ForStream/Decode: %v", err)
	}
	if got := len(r.ContentTypes()); got != 3+8 {
		t.Errorf("len(ContentTypes()) = %d, want %d", got, 3+8)
	}
}
