package serde

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func newProtobuf(t testing.TB, s Schema) Decoder {
	t.Helper()
	d, err := NewProtobufDecoder(s)
	if err != nil {
		t.Fatalf("NewProtobufDecoder(%q): %v", s.ProtobufMessageType, err)
	}
	return d
}

func marshalProto(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("marshal test message: %v", err)
	}
	return b
}

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatalf("build test Struct: %v", err)
	}
	return s
}

func TestProtobufDecodeRendersWellKnownTypesAsPlainJSON(t *testing.T) {
	structAny, err := anypb.New(mustStruct(t, map[string]any{"foo": "a"}))
	if err != nil {
		t.Fatalf("build test Any: %v", err)
	}
	tests := []struct {
		name    string
		msgType string
		msg     proto.Message
		want    any
	}{
		{"struct is a plain object", "google.protobuf.Struct",
			mustStruct(t, map[string]any{"foo": "a", "n": 1, "list": []any{true, nil, 2.5}}),
			map[string]any{"foo": "a", "n": int64(1), "list": []any{true, nil, 2.5}}},
		{"timestamp is RFC 3339", "google.protobuf.Timestamp",
			timestamppb.New(time.Date(2024, 1, 2, 3, 4, 5, 6e6, time.UTC)), "2024-01-02T03:04:05.006Z"},
		{"duration", "google.protobuf.Duration", durationpb.New(1500 * time.Millisecond), "1.500s"},
		{"int64 wrapper is a decimal string", "google.protobuf.Int64Value", wrapperspb.Int64(5), "5"},
		{"string wrapper", "google.protobuf.StringValue", wrapperspb.String("hi"), "hi"},
		{"empty", "google.protobuf.Empty", &emptypb.Empty{}, map[string]any{}},
		{"field mask", "google.protobuf.FieldMask", &fieldmaskpb.FieldMask{Paths: []string{"a.b", "c"}}, "a.b,c"},
		{"any holding a struct", "google.protobuf.Any", structAny,
			map[string]any{"@type": "type.googleapis.com/google.protobuf.Struct", "value": map[string]any{"foo": "a"}}},
		{"leading dot in the type name", ".google.protobuf.Struct", mustStruct(t, map[string]any{}), map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newProtobuf(t, Schema{ProtobufMessageType: tt.msgType})
			got, err := d.Decode(marshalProto(t, tt.msg))
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

func TestProtobufDecodeRejectsBadPayloadsSayingWhy(t *testing.T) {
	unknownAny := &anypb.Any{TypeUrl: "type.googleapis.com/shop.v1.Unknown", Value: []byte{8, 1}}
	nan := &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(math.NaN())}}
	tests := []struct {
		name    string
		msgType string
		payload []byte
		want    []string
	}{
		{"invalid wire data", "google.protobuf.Struct", []byte{0xff, 0xff, 0xff}, []string{"not a valid google.protobuf.Struct"}},
		{"truncated field", "google.protobuf.Struct", marshalProto(t, mustStruct(t, map[string]any{"foo": "a"}))[:4],
			[]string{"not a valid google.protobuf.Struct"}},
		{"invalid UTF-8 in a string", "google.protobuf.StringValue", []byte{0x0a, 0x01, 0xff},
			[]string{"not a valid google.protobuf.StringValue", "UTF-8"}},
		{"any of an unknown type", "google.protobuf.Any", marshalProto(t, unknownAny), []string{"has no JSON form", "shop.v1.Unknown"}},
		{"struct holding NaN", "google.protobuf.Struct", marshalProto(t, nan), []string{"has no JSON form"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newProtobuf(t, Schema{ProtobufMessageType: tt.msgType}).Decode(tt.payload)
			if err == nil {
				t.Fatalf("Decode = %#v, want an error", got)
			}
			wantErr(t, err, tt.want...)
		})
	}
}

// itemFile is shop/v1/item.proto, a user's own message type:
//
//	message Item { string foo = 1; int32 n = 2;
//	  google.protobuf.Timestamp created_at = 3; repeated string tags = 4; Kind kind = 5; }
//	enum Kind { KIND_UNSPECIFIED = 0; KIND_BOOK = 1; }
func itemFile() *descriptorpb.FileDescriptorProto {
	field := func(
		name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, label descriptorpb.FieldDescriptorProto_Label, typeName string,
	) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Type: typ.Enum(), Label: label.Enum()}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	opt, rep := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL, descriptorpb.FieldDescriptorProto_LABEL_REPEATED
	return &descriptorpb.FileDescriptorProto{
		Name:       proto.String("shop/v1/item.proto"),
		Package:    proto.String("shop.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Item"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("foo", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, ""),
				field("n", 2, descriptorpb.FieldDescriptorProto_TYPE_INT32, opt, ""),
				field("created_at", 3, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, opt, ".google.protobuf.Timestamp"),
				field("tags", 4, descriptorpb.FieldDescriptorProto_TYPE_STRING, rep, ""),
				field("kind", 5, descriptorpb.FieldDescriptorProto_TYPE_ENUM, opt, ".shop.v1.Kind"),
			},
		}},
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("Kind"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				{Name: proto.String("KIND_UNSPECIFIED"), Number: proto.Int32(0)},
				{Name: proto.String("KIND_BOOK"), Number: proto.Int32(1)},
			},
		}},
	}
}

// itemDescriptorSet returns a serialized FileDescriptorSet holding only
// item.proto (as protoc writes without --include_imports) and Item's descriptor.
func itemDescriptorSet(t testing.TB) ([]byte, protoreflect.MessageDescriptor) {
	t.Helper()
	file := itemFile()
	raw := marshalProto(t, &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{file}})
	fd, err := protodesc.NewFile(file, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("build test descriptor: %v", err)
	}
	return raw, fd.Messages().ByName("Item")
}

// newItem encodes an Item built with dynamicpb, as a producer that only has
// the descriptor set would.
func newItem(t testing.TB, md protoreflect.MessageDescriptor, foo string, n int32) []byte {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	fields := md.Fields()
	m.Set(fields.ByName("foo"), protoreflect.ValueOfString(foo))
	m.Set(fields.ByName("n"), protoreflect.ValueOfInt32(n))
	m.Set(fields.ByName("created_at"), protoreflect.ValueOfMessage(
		timestamppb.New(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)).ProtoReflect()))
	tags := m.Mutable(fields.ByName("tags")).List()
	tags.Append(protoreflect.ValueOfString("x"))
	tags.Append(protoreflect.ValueOfString("y"))
	m.Set(fields.ByName("kind"), protoreflect.ValueOfEnum(1))
	return marshalProto(t, m)
}

func TestProtobufDecodeUsesTheStreamsDescriptorSet(t *testing.T) {
	set, md := itemDescriptorSet(t)
	d := newProtobuf(t, Schema{ProtobufMessageType: "shop.v1.Item", ProtobufDescriptorSet: set})
	got, err := d.Decode(newItem(t, md, "a", 1))
	if err != nil {
		t.Fatalf("Decode error: %v", err)
	}
	want := map[string]any{
		"foo": "a", "n": int64(1), "createdAt": "2024-01-02T03:04:05Z",
		"tags": []any{"x", "y"}, "kind": "KIND_BOOK",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode = %#v, want %#v", got, want)
	}

	// Unset fields are left out, and an empty payload is an empty message.
	got, err = d.Decode(nil)
	if err != nil || !reflect.DeepEqual(got, map[string]any{}) {
		t.Errorf("Decode(empty) = %#v, %v; want an empty object", got, err)
	}
}

func TestNewProtobufDecoderReportsSchemaProblems(t *testing.T) {
	set, _ := itemDescriptorSet(t)
	missingImport := itemFile()
	missingImport.Dependency = []string{"shop/v1/missing.proto"}
	unresolvable := marshalProto(t, &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{missingImport}})
	tests := []struct {
		name   string
		schema Schema
		want   []string
	}{
		{"no message type", Schema{}, []string{"needs a message type"}},
		{"malformed name", Schema{ProtobufMessageType: "shop v1/Item"}, []string{`"shop v1/Item" is not a protobuf message name`}},
		{"unknown type without a set", Schema{ProtobufMessageType: "shop.v1.Item"},
			[]string{`"shop.v1.Item" is not a well-known type`, "add a descriptor set"}},
		{"type in neither set nor well-known types", Schema{ProtobufMessageType: "shop.v1.Missing", ProtobufDescriptorSet: set},
			[]string{`"shop.v1.Missing" was not found in the descriptor set or the well-known types`}},
		{"an enum is not a message", Schema{ProtobufMessageType: "shop.v1.Kind", ProtobufDescriptorSet: set},
			[]string{`"shop.v1.Kind" cannot be used`}},
		{"set that is not a descriptor set", Schema{ProtobufMessageType: "shop.v1.Item", ProtobufDescriptorSet: []byte{0xff, 0x01}},
			[]string{"descriptor set does not parse", "FileDescriptorSet"}},
		{"set with an unresolvable import", Schema{ProtobufMessageType: "shop.v1.Item", ProtobufDescriptorSet: unresolvable},
			[]string{"descriptor set does not parse", "shop/v1/missing.proto"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewProtobufDecoder(tt.schema)
			if !errors.Is(err, ErrInvalidSchema) {
				t.Fatalf("got error %v, want one wrapping ErrInvalidSchema", err)
			}
			wantErr(t, err, tt.want...)
		})
	}
}
