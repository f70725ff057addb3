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

//nolint:lll // controller-gen markers (CEL rules, patterns) cannot be wrapped.
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ContentType is a wire format a Stream accepts at ingest.
// +kubebuilder:validation:Enum=application/json;application/avro;application/x-protobuf
type ContentType string

// The content types a Stream can accept.
const (
	// ContentTypeJSON is JSON: a payload must parse as JSON.
	ContentTypeJSON ContentType = "application/json"
	// ContentTypeAvro is one bare Avro datum, decoded with spec.schemas.avro.
	ContentTypeAvro ContentType = "application/avro"
	// ContentTypeProtobuf is a binary protobuf message of the type named by
	// spec.schemas.protobuf.messageType.
	ContentTypeProtobuf ContentType = "application/x-protobuf"
)

// StreamSpec is the desired state of a Stream.
// +kubebuilder:validation:XValidation:rule="!has(self.contentTypes) || !('application/avro' in self.contentTypes) || (has(self.schemas) && has(self.schemas.avro))",message="an Avro schema is required when contentTypes includes application/avro: set schemas.avro to the schema's JSON, or remove application/avro from contentTypes",fieldPath=".schemas.avro",reason="FieldValueRequired"
// +kubebuilder:validation:XValidation:rule="!has(self.contentTypes) || !('application/x-protobuf' in self.contentTypes) || (has(self.schemas) && has(self.schemas.protobuf))",message="a protobuf message type is required when contentTypes includes application/x-protobuf: set schemas.protobuf.messageType (for example google.protobuf.Struct), or remove application/x-protobuf from contentTypes",fieldPath=".schemas.protobuf",reason="FieldValueRequired"
type StreamSpec struct {
	// ContentTypes are the wire formats the stream accepts at ingest:
	// application/json, application/avro (needs schemas.avro) and
	// application/x-protobuf (needs schemas.protobuf). A request whose
	// Content-Type (or format query parameter) is not listed is refused with
	// 415. Defaults to [application/json].
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=3
	// +kubebuilder:default={"application/json"}
	ContentTypes []ContentType `json:"contentTypes,omitempty"`

	// DefaultEventName is the name given to an event whose request names
	// none (neither a ce-type header nor a name query parameter).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	DefaultEventName string `json:"defaultEventName,omitempty"`

	// Schemas describe the payloads of the binary content types: every
	// Avro or protobuf payload is checked against them before it is accepted.
	// +optional
	Schemas *StreamSchemas `json:"schemas,omitempty"`

	// BacklogLimit bounds the queue of live events waiting for each
	// subscriber (projection) of the stream. A subscriber whose queue is
	// full falls back to reading the event store and rejoins the live feed
	// once caught up: publishing never waits for it and no event is dropped.
	// Defaults to 1000; at least 1.
	// +optional
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	BacklogLimit int32 `json:"backlogLimit,omitempty"`

	// DeadLetterStream names the stream that receives the events that fail
	// for good in projections reading this stream (retries spent, payload
	// undecodable, a CEL error), with headers that say why. It need not be
	// declared as a Stream to be read. Defaults to the manager's
	// --dead-letter-stream. It must not be the stream itself.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	DeadLetterStream string `json:"deadLetterStream,omitempty"`

	// Retention bounds what the event store keeps of the stream; without
	// it every event is kept. Older events are compacted away about once a
	// minute, but never one that a Projection reading the stream has not
	// applied yet: a slow or stalled projection holds retention back rather
	// than being skipped past. The last event is always kept. Reads and new
	// projections start at the first event retained, and idempotency keys
	// are remembered only while their event is retained.
	// +optional
	Retention *StreamRetention `json:"retention,omitempty"`
}

// StreamRetention bounds a stream's stored events by count, by age, or both
// (an event goes when either bound says so).
// +kubebuilder:validation:XValidation:rule="has(self.maxEvents) || has(self.maxAge)",message="retention needs maxEvents, maxAge or both: remove retention to keep every event"
type StreamRetention struct {
	// MaxEvents keeps at most this many of the stream's newest events.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxEvents *int64 `json:"maxEvents,omitempty"`

	// MaxAge keeps events accepted less than this long ago, such as 720h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s')",message="must be a positive duration such as 24h or 720h"
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
}

// StreamSchemas describe the payloads of the binary content types.
type StreamSchemas struct {
	// Avro is the Avro schema, in its JSON form, of every application/avro
	// payload. Required when contentTypes includes application/avro. A
	// payload is one bare Avro datum: no container-file header and no
	// schema-registry prefix. An invalid schema makes the stream Ready=False.
	// +optional
	// +kubebuilder:validation:MinLength=1
	Avro string `json:"avro,omitempty"`

	// Protobuf names the message type of every application/x-protobuf
	// payload. Required when contentTypes includes application/x-protobuf.
	// +optional
	Protobuf *ProtobufSchema `json:"protobuf,omitempty"`
}

// ProtobufSchema names the message type of protobuf payloads and, for the
// user's own types, where their descriptors are.
type ProtobufSchema struct {
	// MessageType is the full name of the message type of every payload,
	// such as google.protobuf.Struct. A well-known type (google.protobuf.*)
	// needs nothing else; any other type must be defined in the descriptor
	// set that descriptorSetRef points to. An unknown type makes the stream
	// Ready=False.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^\.?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`
	MessageType string `json:"messageType"`

	// DescriptorSetRef points to a serialized google.protobuf.FileDescriptorSet
	// (as written by protoc --descriptor_set_out --include_imports) stored
	// under a binaryData key of a ConfigMap in the stream's namespace. A
	// missing ConfigMap or key makes the stream Ready=False until it appears.
	// +optional
	DescriptorSetRef *ConfigMapKeyReference `json:"descriptorSetRef,omitempty"`
}

// ConfigMapKeyReference selects one key of a ConfigMap in the same namespace.
type ConfigMapKeyReference struct {
	// Name is the name of the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// Key is the key in the ConfigMap's binaryData (or data) that holds the
	// value.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// StreamStatus is the observed state of a Stream.
type StreamStatus struct {
	// ObservedGeneration is the metadata.generation of the spec that the
	// status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions describe the stream's state. Ready is True when the stream
	// accepts events; when it is False, its reason and message say what to
	// fix (for example InvalidSchema).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// IngestPath is the HTTP path, on the manager's ingest address, that
	// events are posted to, such as
	// /v1/namespaces/default/streams/items-events/events.
	// +optional
	IngestPath string `json:"ingestPath,omitempty"`

	// LastSequence is the sequence number of the newest event appended to
	// the stream; 0 while it has none.
	// +optional
	LastSequence int64 `json:"lastSequence"`

	// Subscribers is the number of projections currently reading the stream.
	// +optional
	Subscribers int32 `json:"subscribers"`
}

// Stream is a named, ordered, append-only log of events, and the topic that
// carries them to the projections that read it. Events are posted to
// status.ingestPath over HTTP.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=str,categories=eventsourcing
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Last Sequence",type=integer,JSONPath=`.status.lastSequence`
// +kubebuilder:printcolumn:name="Subscribers",type=integer,JSONPath=`.status.subscribers`
// +kubebuilder:printcolumn:name="Ingest Path",type=string,JSONPath=`.status.ingestPath`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(self.spec.deadLetterStream) || self.spec.deadLetterStream != self.metadata.name",message="a stream cannot be its own dead-letter stream: name another stream in deadLetterStream, or remove it to use the manager's default",fieldPath=".spec.deadLetterStream"
type Stream struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the stream.
	// +optional
	// +kubebuilder:default={}
	Spec StreamSpec `json:"spec"`

	// Status is the observed state of the stream, written by the manager.
	// +optional
	Status StreamStatus `json:"status,omitempty"`
}

// StreamList contains a list of Streams.
// +kubebuilder:object:root=true
type StreamList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Stream `json:"items"`
}
