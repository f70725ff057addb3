package serde

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	// The well-known types a stream may name without a descriptor set.
	_ "google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/emptypb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
	_ "google.golang.org/protobuf/types/known/structpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"
)

// protobufDecoder decodes application/x-protobuf payloads of one message type.
type protobufDecoder struct {
	msgType protoreflect.MessageType
	types   protoTypes
	json    protojson.MarshalOptions
}

// NewProtobufDecoder is the Factory for application/x-protobuf. It resolves
// s.ProtobufMessageType once: from s.ProtobufDescriptorSet when one is given,
// else (or when the set lacks it) from the well-known types linked into the
// program. A missing name, a set that does not parse, or a type found in
// neither is ErrInvalidSchema.
//
// Decode unmarshals the payload into the message type and renders it with
// protobuf's JSON mapping (protojson, field names in lowerCamelCase, unset
// fields left out), so a google.protobuf.Struct becomes a plain JSON object,
// a Timestamp an RFC 3339 string and, as that mapping says, 64-bit integer
// fields decimal strings.
func NewProtobufDecoder(s Schema) (Decoder, error) {
	name := protoreflect.FullName(strings.TrimPrefix(strings.TrimSpace(s.ProtobufMessageType), "."))
	if name == "" {
		return nil, fmt.Errorf("%w: application/x-protobuf needs a message type; set one such as google.protobuf.Struct", ErrInvalidSchema)
	}
	if !name.IsValid() {
		return nil, fmt.Errorf("%w: %q is not a protobuf message name; use a full name such as shop.v1.Item",
			ErrInvalidSchema, s.ProtobufMessageType)
	}
	types := protoTypes{global: protoregistry.GlobalTypes}
	if len(s.ProtobufDescriptorSet) > 0 {
		local, err := typesFromDescriptorSet(s.ProtobufDescriptorSet)
		if err != nil {
			return nil, fmt.Errorf("%w: the protobuf descriptor set does not parse: %w", ErrInvalidSchema, err)
		}
		types.local = local
	}
	mt, err := types.FindMessageByName(name)
	if err != nil {
		return nil, fmt.Errorf("%w: protobuf message type %q %s", ErrInvalidSchema, name, types.notFoundHint(err))
	}
	return &protobufDecoder{
		msgType: mt,
		types:   types,
		json:    protojson.MarshalOptions{Resolver: types},
	}, nil
}

// Decode unmarshals payload as the stream's message type and returns its JSON
// form as JSON-compatible values.
func (d *protobufDecoder) Decode(payload []byte) (any, error) {
	msg := d.msgType.New().Interface()
	if err := (proto.UnmarshalOptions{Resolver: d.types}).Unmarshal(payload, msg); err != nil {
		return nil, fmt.Errorf("protobuf: payload is not a valid %s: %w", d.msgType.Descriptor().FullName(), err)
	}
	b, err := d.json.Marshal(msg)
	if err != nil {
		// For example an Any whose type is unknown, or a Struct holding NaN.
		return nil, fmt.Errorf("protobuf: %s has no JSON form: %w", d.msgType.Descriptor().FullName(), err)
	}
	v, err := decodeJSON(b)
	if err != nil {
		return nil, fmt.Errorf("protobuf: reading the JSON form of %s: %w", d.msgType.Descriptor().FullName(), err)
	}
	return v, nil
}

// notFoundHint tells the user where the type was looked for.
func (t protoTypes) notFoundHint(err error) string {
	if !errors.Is(err, protoregistry.NotFound) {
		return "cannot be used: " + err.Error()
	}
	if t.local == nil {
		return "is not a well-known type; add a descriptor set that defines it"
	}
	return "was not found in the descriptor set or the well-known types; check the name and the set's package"
}
