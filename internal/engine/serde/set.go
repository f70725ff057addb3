package serde

import (
	"fmt"
	"slices"
	"strings"
)

// Set holds one stream's decoders, one per content type the stream accepts.
// It is built once when the stream is applied and never changes, so it is safe
// for concurrent use.
type Set struct {
	decoders     map[string]Decoder
	contentTypes []string
}

// ForStream builds a decoder for each content type in contentTypes up front,
// so that a bad schema is reported when the stream is applied rather than on
// its first event. An empty list means application/json, the Stream default.
// The error names the content type and wraps ErrUnsupportedContentType or
// ErrInvalidSchema (see Decoder).
func (r *Registry) ForStream(contentTypes []string, s Schema) (*Set, error) {
	if len(contentTypes) == 0 {
		contentTypes = []string{JSON}
	}
	set := &Set{decoders: make(map[string]Decoder, len(contentTypes))}
	for _, raw := range contentTypes {
		ct := NormalizeContentType(raw)
		if _, dup := set.decoders[ct]; dup {
			continue
		}
		d, err := r.Decoder(ct, s)
		if err != nil {
			return nil, err
		}
		set.decoders[ct] = d
		set.contentTypes = append(set.contentTypes, ct)
	}
	slices.Sort(set.contentTypes)
	return set, nil
}

// Decode decodes payload with the stream's decoder for contentType. The error
// wraps ErrUnsupportedContentType, and lists the accepted types, when the
// stream does not accept contentType.
func (s *Set) Decode(contentType string, payload []byte) (any, error) {
	// Stored events carry normalized content types: look those up as they
	// are and normalize only what misses.
	d, ok := s.decoders[contentType]
	if !ok {
		d, ok = s.decoders[NormalizeContentType(contentType)]
	}
	if !ok {
		return nil, fmt.Errorf("%w %q: this stream accepts %s", ErrUnsupportedContentType, contentType, strings.Join(s.contentTypes, ", "))
	}
	return d.Decode(payload)
}

// Validate checks payload as Decode would, without building its value when
// the content type's decoder can do that (see Validator).
func (s *Set) Validate(contentType string, payload []byte) error {
	d, ok := s.decoders[contentType]
	if !ok {
		d, ok = s.decoders[NormalizeContentType(contentType)]
	}
	if !ok {
		_, err := s.Decode(contentType, payload) // the error that lists what the stream accepts
		return err
	}
	if v, ok := d.(Validator); ok {
		return v.Validate(payload)
	}
	_, err := d.Decode(payload)
	return err
}

// Accepts reports whether the stream accepts contentType.
func (s *Set) Accepts(contentType string) bool {
	_, ok := s.decoders[NormalizeContentType(contentType)]
	return ok
}

// ContentTypes returns the normalized content types the stream accepts,
// sorted. The caller may modify the returned slice.
func (s *Set) ContentTypes() []string {
	return slices.Clone(s.contentTypes)
}
