package serde

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// typeResolver is what proto.Unmarshal (extensions) and protojson (Any, and
// extensions) need to find types by name.
type typeResolver interface {
	protoregistry.MessageTypeResolver
	protoregistry.ExtensionTypeResolver
}

// protoTypes looks types up in a stream's descriptor set first, when it has
// one, and then among the types linked into the program, so a user's message
// can hold a google.protobuf.Any of either kind.
type protoTypes struct {
	local  typeResolver // nil without a descriptor set
	global typeResolver
}

// lookup returns the local result unless the local set lacks the type.
func lookup[T any](local, global typeResolver, find func(typeResolver) (T, error)) (T, error) {
	if local != nil {
		v, err := find(local)
		if !errors.Is(err, protoregistry.NotFound) {
			return v, err
		}
	}
	return find(global)
}

// FindMessageByName implements protoregistry.MessageTypeResolver.
func (t protoTypes) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	return lookup(t.local, t.global, func(r typeResolver) (protoreflect.MessageType, error) {
		return r.FindMessageByName(name)
	})
}

// FindMessageByURL implements protoregistry.MessageTypeResolver.
func (t protoTypes) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	return lookup(t.local, t.global, func(r typeResolver) (protoreflect.MessageType, error) {
		return r.FindMessageByURL(url)
	})
}

// FindExtensionByName implements protoregistry.ExtensionTypeResolver.
func (t protoTypes) FindExtensionByName(field protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return lookup(t.local, t.global, func(r typeResolver) (protoreflect.ExtensionType, error) {
		return r.FindExtensionByName(field)
	})
}

// FindExtensionByNumber implements protoregistry.ExtensionTypeResolver.
func (t protoTypes) FindExtensionByNumber(
	message protoreflect.FullName, field protoreflect.FieldNumber,
) (protoreflect.ExtensionType, error) {
	return lookup(t.local, t.global, func(r typeResolver) (protoreflect.ExtensionType, error) {
		return r.FindExtensionByNumber(message, field)
	})
}

// typesFromDescriptorSet builds dynamic message types from a serialized
// google.protobuf.FileDescriptorSet.
func typesFromDescriptorSet(raw []byte) (*dynamicpb.Types, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("not a serialized google.protobuf.FileDescriptorSet: %w", err)
	}
	addLinkedImports(&set)
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, err
	}
	return dynamicpb.NewTypes(files), nil
}

// addLinkedImports appends to set the files it imports but lacks that are
// linked into the program, such as google/protobuf/timestamp.proto, so a set
// made without protoc's --include_imports still resolves.
func addLinkedImports(set *descriptorpb.FileDescriptorSet) {
	have := make(map[string]bool, len(set.GetFile()))
	for _, f := range set.GetFile() {
		have[f.GetName()] = true
	}
	// set.File grows as imports are added, so their own imports are visited too.
	for i := 0; i < len(set.File); i++ {
		for _, dep := range set.File[i].GetDependency() {
			if have[dep] {
				continue
			}
			fd, err := protoregistry.GlobalFiles.FindFileByPath(dep)
			if err != nil {
				continue // protodesc.NewFiles reports the unresolved import
			}
			set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
			have[dep] = true
		}
	}
}
