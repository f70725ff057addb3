package serde

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Factory builds the Decoder for one content type and one stream's schema. It
// does the expensive, fallible work (parsing a schema, resolving a message
// type) once, and returns an error wrapping ErrInvalidSchema when the schema
// cannot be used.
type Factory func(Schema) (Decoder, error)

// Registry maps content types to the factories that build their decoders. It is
// safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// NewRegistry returns a Registry with JSON, Avro and Protobuf registered.
func NewRegistry() *Registry {
	r := &Registry{factories: make(map[string]Factory)}
	r.Register(JSON, NewJSONDecoder)
	r.Register(Avro, NewAvroDecoder)
	r.Register(Protobuf, NewProtobufDecoder)
	return r
}

// Register makes f the factory for contentType (normalized with
// NormalizeContentType), replacing any factory registered before. Streams
// already built with ForStream keep the decoders they have. Like
// http.Handle, it panics on an empty content type or a nil factory, which are
// programming errors.
func (r *Registry) Register(contentType string, f Factory) {
	ct := NormalizeContentType(contentType)
	if ct == "" {
		panic("serde: Register with an empty content type")
	}
	if f == nil {
		panic("serde: Register " + ct + " with a nil factory")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.factories[ct] = f
}

// Registered reports whether a factory is registered for contentType.
func (r *Registry) Registered(contentType string) bool {
	_, ok := r.factory(NormalizeContentType(contentType))
	return ok
}

// ContentTypes returns the registered content types, sorted.
func (r *Registry) ContentTypes() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	cts := make([]string, 0, len(r.factories))
	for ct := range r.factories {
		cts = append(cts, ct)
	}
	slices.Sort(cts)
	return cts
}

// Decoder builds a decoder for contentType and the stream's schema. The error
// wraps ErrUnsupportedContentType when nothing is registered for contentType,
// and ErrInvalidSchema when the schema cannot be used; either way the message
// names the content type and what to fix.
func (r *Registry) Decoder(contentType string, s Schema) (Decoder, error) {
	ct := NormalizeContentType(contentType)
	f, ok := r.factory(ct)
	if !ok {
		return nil, fmt.Errorf("%w %q: use one of %s", ErrUnsupportedContentType, contentType, strings.Join(r.ContentTypes(), ", "))
	}
	d, err := f(s)
	if err != nil {
		if !errors.Is(err, ErrInvalidSchema) {
			// Every factory failure is about the schema it was given, so callers
			// can rely on the sentinel even for factories registered by others.
			err = fmt.Errorf("%w: %w", ErrInvalidSchema, err)
		}
		return nil, fmt.Errorf("%s: %w", ct, err)
	}
	return d, nil
}

func (r *Registry) factory(ct string) (Factory, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.factories[ct]
	return f, ok
}

// NormalizeContentType lowercases ct and strips parameters and spaces, so
// "Application/JSON; charset=utf-8" becomes "application/json".
func NormalizeContentType(ct string) string {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(ct))
}
