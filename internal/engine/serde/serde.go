// Package serde turns event payloads in the wire formats a stream accepts
// (JSON, Avro, Protobuf) into JSON-compatible values.
package serde

import "errors"

// Content types the engine registers by default.
const (
	JSON     = "application/json"
	Avro     = "application/avro"
	Protobuf = "application/x-protobuf"
)

// ErrUnsupportedContentType is wrapped when no codec is registered for a
// content type, or the stream does not accept it.
var ErrUnsupportedContentType = errors.New("unsupported content type")

// ErrInvalidSchema is wrapped when a stream's schema cannot be used (an Avro
// schema that does not parse, an unknown protobuf message type, a bad
// descriptor set).
var ErrInvalidSchema = errors.New("invalid schema")

// Schema is what a stream says about its payloads' shapes.
type Schema struct {
	// Avro is an Avro schema in its JSON form; required for Avro.
	Avro string
	// ProtobufMessageType is a full message name such as
	// "google.protobuf.Struct" or "shop.v1.Item"; required for Protobuf.
	ProtobufMessageType string
	// ProtobufDescriptorSet is a serialized google.protobuf.FileDescriptorSet
	// holding the user's own message types; optional.
	ProtobufDescriptorSet []byte
}

// Decoder decodes payloads of one content type for one stream.
// Implementations are safe for concurrent use.
type Decoder interface {
	// Decode returns the payload as a JSON-compatible value: map[string]any,
	// []any, string, float64, int64, bool or nil. A payload that does not
	// decode gives an error that says why and where; Decode never panics.
	Decode(payload []byte) (any, error)
}

// Validator is implemented by decoders that can check a payload without
// building its value, for when nothing reads the value: the JSON decoder
// checks syntax at a fraction of the cost of decoding.
type Validator interface {
	// Validate returns the error Decode would return for a payload that is
	// not well-formed, and nil otherwise.
	Validate(payload []byte) error
}
