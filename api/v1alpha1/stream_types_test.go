/*
Copyright 2026 The eventsourcing-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1_test

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// streamEveryField is a Stream with every spec field set.
const streamEveryField = `
apiVersion: eventsourcing.dev/v1alpha1
kind: Stream
metadata:
  name: items-events
  namespace: default
spec:
  contentTypes:
    - application/json
    - application/avro
    - application/x-protobuf
  defaultEventName: ItemCreated
  schemas:
    avro: |
      {"type":"record","name":"Item","fields":[
        {"name":"foo","type":"string"},{"name":"n","type":"int"}]}
    protobuf:
      messageType: google.protobuf.Struct
      descriptorSetRef:
        name: item-protos
        key: items.pb
  backlogLimit: 1000
  retention: {maxEvents: 1000000, maxAge: 720h}
  deadLetterStream: dead
`

// stream returns a Stream manifest named items-events with the given spec
// (YAML indented by two spaces, or empty for no spec at all).
func stream(spec string) string {
	m := "apiVersion: eventsourcing.dev/v1alpha1\nkind: Stream\nmetadata:\n  name: items-events\n  namespace: default\n"
	if spec != "" {
		m += "spec:\n" + spec
	}
	return m
}

func TestStreamValidation(t *testing.T) {
	const (
		avroRequired     = "an Avro schema is required when contentTypes includes application/avro"
		protobufRequired = "a protobuf message type is required when contentTypes includes application/x-protobuf"
	)
	runAdmitCases(t, loadCRD(t, "streams"), []admitCase{
		{name: "every field set is valid", manifest: streamEveryField},
		{name: "the example of docs/streams.md is valid", manifest: docExample(t, "streams.md", "Stream")},
		{name: "no spec at all is valid", manifest: stream("")},
		{name: "an empty spec is valid", manifest: stream("  {}\n")},
		{name: "JSON needs no schema", manifest: stream("  contentTypes: [application/json]\n")},
		{name: "Avro with its schema", manifest: stream("  contentTypes: [application/avro]\n  schemas: {avro: '\"string\"'}\n")},
		{name: "protobuf with a well-known type", manifest: stream(
			"  contentTypes: [application/x-protobuf]\n  schemas: {protobuf: {messageType: google.protobuf.Struct}}\n")},
		{name: "protobuf message type with a leading dot", manifest: stream(
			"  contentTypes: [application/x-protobuf]\n  schemas: {protobuf: {messageType: .shop.v1.Item}}\n")},
		{name: "a schema for a type not accepted is allowed", manifest: stream("  schemas: {avro: '\"string\"'}\n")},
		{name: "retention by count", manifest: stream("  retention: {maxEvents: 1000}\n")},
		{name: "retention by age and count", manifest: stream("  retention: {maxEvents: 5, maxAge: 720h}\n")},
		{
			name:       "retention with neither bound",
			manifest:   stream("  retention: {}\n"),
			wantErrors: []wantError{{"spec.retention", "retention needs maxEvents, maxAge or both"}},
		},
		{
			name:       "retention of no events",
			manifest:   stream("  retention: {maxEvents: 0}\n"),
			wantErrors: []wantError{{"spec.retention.maxEvents", "should be greater than or equal to 1"}},
		},
		{
			name:       "retention for a zero age",
			manifest:   stream("  retention: {maxAge: 0s}\n"),
			wantErrors: []wantError{{"spec.retention.maxAge", "must be a positive duration"}},
		},
		{
			name:       "retention for an age that is not a duration",
			manifest:   stream("  retention: {maxAge: 30d}\n"),
			wantErrors: []wantError{{"spec.retention.maxAge", "must be a positive duration"}},
		},
		{
			name:       "Avro without a schema",
			manifest:   stream("  contentTypes: [application/json, application/avro]\n"),
			wantErrors: []wantError{{"spec.schemas.avro", "Required value: " + avroRequired}},
		},
		{
			name:       "Avro with only a protobuf schema",
			manifest:   stream("  contentTypes: [application/avro]\n  schemas: {protobuf: {messageType: google.protobuf.Struct}}\n"),
			wantErrors: []wantError{{"spec.schemas.avro", avroRequired}},
		},
		{
			name:       "Avro with an empty schema",
			manifest:   stream("  contentTypes: [application/avro]\n  schemas: {avro: ''}\n"),
			wantErrors: []wantError{{"spec.schemas.avro", "should be at least 1 chars long"}},
		},
		{
			name:       "protobuf without a message type",
			manifest:   stream("  contentTypes: [application/x-protobuf]\n"),
			wantErrors: []wantError{{"spec.schemas.protobuf", "Required value: " + protobufRequired}},
		},
		{
			name:       "protobuf schema without messageType",
			manifest:   stream("  contentTypes: [application/x-protobuf]\n  schemas: {protobuf: {}}\n"),
			wantErrors: []wantError{{"spec.schemas.protobuf.messageType", "Required value"}},
		},
		{
			name:       "protobuf message type that is not a full name",
			manifest:   stream("  contentTypes: [application/x-protobuf]\n  schemas: {protobuf: {messageType: 'shop/Item'}}\n"),
			wantErrors: []wantError{{"spec.schemas.protobuf.messageType", "should match"}},
		},
		{
			name: "descriptorSetRef without key",
			manifest: stream("  contentTypes: [application/x-protobuf]\n" +
				"  schemas: {protobuf: {messageType: shop.v1.Item, descriptorSetRef: {name: item-protos}}}\n"),
			wantErrors: []wantError{{"spec.schemas.protobuf.descriptorSetRef.key", "Required value"}},
		},
		{
			name: "descriptorSetRef without name",
			manifest: stream("  contentTypes: [application/x-protobuf]\n" +
				"  schemas: {protobuf: {messageType: shop.v1.Item, descriptorSetRef: {key: items.pb}}}\n"),
			wantErrors: []wantError{{"spec.schemas.protobuf.descriptorSetRef.name", "Required value"}},
		},
		{
			name: "descriptorSetRef with a name that is not a ConfigMap name",
			manifest: stream("  contentTypes: [application/x-protobuf]\n" +
				"  schemas: {protobuf: {messageType: shop.v1.Item, descriptorSetRef: {name: Item_Protos, key: items.pb}}}\n"),
			wantErrors: []wantError{{"spec.schemas.protobuf.descriptorSetRef.name", "should match"}},
		},
		{
			name:       "an unknown content type",
			manifest:   stream("  contentTypes: [text/plain]\n"),
			wantErrors: []wantError{{"spec.contentTypes[0]", `Unsupported value: "text/plain"`}},
		},
		{
			name:       "a content type listed twice",
			manifest:   stream("  contentTypes: [application/json, application/json]\n"),
			wantErrors: []wantError{{"spec.contentTypes[1]", "Duplicate value"}},
		},
		{
			name:       "no content types",
			manifest:   stream("  contentTypes: []\n"),
			wantErrors: []wantError{{"spec.contentTypes", "should have at least 1 items"}},
		},
		{
			name:       "backlogLimit 0",
			manifest:   stream("  backlogLimit: 0\n"),
			wantErrors: []wantError{{"spec.backlogLimit", "should be greater than or equal to 1"}},
		},
		{
			name:       "the stream as its own dead-letter stream",
			manifest:   stream("  deadLetterStream: items-events\n"),
			wantErrors: []wantError{{"spec.deadLetterStream", "a stream cannot be its own dead-letter stream"}},
		},
		{
			name:       "a dead-letter stream that is not a valid name",
			manifest:   stream("  deadLetterStream: Dead_Letters\n"),
			wantErrors: []wantError{{"spec.deadLetterStream", "should match"}},
		},
		{
			name:       "a misspelt field",
			manifest:   stream("  contentType: [application/json]\n"),
			wantErrors: []wantError{{"spec.contentType", "unknown field"}},
		},
	})
}

func TestStreamDefaults(t *testing.T) {
	c := loadCRD(t, "streams")
	for name, manifest := range map[string]string{"no spec": stream(""), "empty spec": stream("  {}\n")} {
		t.Run(name, func(t *testing.T) {
			obj, errs := c.admit(t, manifest)
			if len(errs) != 0 {
				t.Fatalf("got errors, want none:\n%s", errorLines(errs))
			}
			var s v1alpha1.Stream
			decodeStrict(t, obj, &s)
			if want := []v1alpha1.ContentType{v1alpha1.ContentTypeJSON}; !slices.Equal(s.Spec.ContentTypes, want) {
				t.Errorf("contentTypes: got %v, want %v", s.Spec.ContentTypes, want)
			}
			if s.Spec.BacklogLimit != 1000 {
				t.Errorf("backlogLimit: got %d, want 1000", s.Spec.BacklogLimit)
			}
		})
	}
}

func TestStreamWithEveryFieldDecodes(t *testing.T) {
	obj, errs := loadCRD(t, "streams").admit(t, streamEveryField)
	if len(errs) != 0 {
		t.Fatalf("got errors, want none:\n%s", errorLines(errs))
	}
	var s v1alpha1.Stream
	decodeStrict(t, obj, &s)
	p := s.Spec.Schemas.Protobuf
	if p.MessageType != "google.protobuf.Struct" || p.DescriptorSetRef.Name != "item-protos" || p.DescriptorSetRef.Key != "items.pb" {
		t.Errorf("schemas.protobuf: got %+v, want google.protobuf.Struct from item-protos/items.pb", p)
	}
	if len(s.Spec.ContentTypes) != 3 || s.Spec.DeadLetterStream != "dead" || s.Spec.DefaultEventName != "ItemCreated" {
		t.Errorf("spec: got %+v", s.Spec)
	}
	r := s.Spec.Retention
	if r == nil || r.MaxEvents == nil || *r.MaxEvents != 1000000 || r.MaxAge == nil || r.MaxAge.Duration != 720*time.Hour {
		t.Errorf("spec.retention: got %+v, want 1000000 events and 720h", r)
	}
}

// TestStreamBuiltInGoIsValid: what a Go client sends for a Stream it builds,
// zero values included, passes validation, and so does a full status.
func TestStreamBuiltInGoIsValid(t *testing.T) {
	c := loadCRD(t, "streams")
	meta := metav1.ObjectMeta{Name: "items-events", Namespace: "default"}
	typeMeta := metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Stream"}
	objects := map[string]*v1alpha1.Stream{
		"zero spec": {TypeMeta: typeMeta, ObjectMeta: meta},
		"with status": {TypeMeta: typeMeta, ObjectMeta: meta,
			Spec: v1alpha1.StreamSpec{
				ContentTypes: []v1alpha1.ContentType{v1alpha1.ContentTypeProtobuf},
				Schemas:      &v1alpha1.StreamSchemas{Protobuf: &v1alpha1.ProtobufSchema{MessageType: "google.protobuf.Struct"}},
			},
			Status: v1alpha1.StreamStatus{
				ObservedGeneration: 1,
				Conditions: []metav1.Condition{{
					Type: "Ready", Status: metav1.ConditionTrue, Reason: "Active", Message: "accepting events",
					LastTransitionTime: metav1.Now(), ObservedGeneration: 1,
				}},
				IngestPath:   "/v1/namespaces/default/streams/items-events/events",
				LastSequence: 42,
				Subscribers:  1,
			},
		},
	}
	for name, obj := range objects {
		t.Run(name, func(t *testing.T) {
			if _, errs := c.admit(t, toManifest(t, obj)); len(errs) != 0 {
				t.Fatalf("got errors, want none:\n%s", errorLines(errs))
			}
		})
	}
}
