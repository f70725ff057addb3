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

// ReactorOrdering is how a Reactor orders its deliveries.
// +kubebuilder:validation:Enum=Ordered;KeyOrdered;Unordered
type ReactorOrdering string

// The orderings of deliveries.
const (
	// OrderingOrdered delivers one event at a time per stream, in sequence
	// order.
	OrderingOrdered ReactorOrdering = "Ordered"
	// OrderingKeyOrdered keeps each key's events in order and delivers
	// different keys in parallel, up to maxInFlight.
	OrderingKeyOrdered ReactorOrdering = "KeyOrdered"
	// OrderingUnordered only bounds the number of deliveries in flight.
	OrderingUnordered ReactorOrdering = "Unordered"
)

// ReactorSpec is the desired state of a Reactor.
type ReactorSpec struct {
	// Streams are the names of the Streams, in the reactor's namespace,
	// whose events it delivers: at least one, each listed once. A stream
	// that does not exist yet makes the reactor Ready=False
	// (StreamNotFound) until it is created.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Streams []string `json:"streams"`

	// EventNames, when set, limits the reactor to events with these names;
	// other events are skipped.
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	EventNames []string `json:"eventNames,omitempty"`

	// PipelineRef names the Pipeline, in the reactor's namespace, that
	// events pass through before they are delivered. Without it the
	// reactor uses the default chain, as a Projection does. A pipeline
	// that does not exist yet makes the reactor Ready=False
	// (PipelineNotFound) until it is created.
	// +optional
	PipelineRef *PipelineReference `json:"pipelineRef,omitempty"`

	// StartFrom is where a new reactor starts: Latest (the default)
	// delivers only the events appended after it is created; Beginning
	// delivers the events already stored first.
	// +optional
	// +kubebuilder:default=Latest
	StartFrom StartFrom `json:"startFrom,omitempty"`

	// Sink is the HTTP endpoint events are posted to.
	// +required
	Sink ReactorSink `json:"sink"`

	// Reply, when set, appends the events in the sink's answers to a
	// stream. Without it answers are ignored.
	// +optional
	Reply *ReactorReply `json:"reply,omitempty"`

	// Delivery sets the ordering, concurrency and per-attempt timeout.
	// +optional
	// +kubebuilder:default={}
	Delivery ReactorDelivery `json:"delivery,omitempty"`
}

// ReactorSink is where a Reactor posts events: a Service of its namespace
// (ref, with an optional path) or a URL (uri), exactly one of them.
// +kubebuilder:validation:XValidation:rule="has(self.ref) != has(self.uri)",message="set exactly one of ref (a Service in the reactor's namespace) and uri (an http or https URL)"
// +kubebuilder:validation:XValidation:rule="!has(self.path) || has(self.ref)",message="path is only for ref: with uri, put the path in the URL"
type ReactorSink struct {
	// Ref names a Service in the reactor's namespace; events are posted to
	// http://{name}.{namespace}.svc.cluster.local:{port}{path}. A Service
	// that does not exist yet makes the reactor Ready=False (SinkNotFound)
	// until it is created.
	// +optional
	Ref *SinkReference `json:"ref,omitempty"`

	// Path is the HTTP path on the Service named by ref, such as /events.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path,omitempty"`

	// URI is an http or https URL to post events to. Loopback and
	// link-local hosts are refused unless the manager runs with
	// --allow-private-sinks.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('http://') || self.startsWith('https://')",message="uri must be an http:// or https:// URL"
	URI string `json:"uri,omitempty"`

	// Audience, when set, sends with each delivery an Authorization:
	// Bearer token of the manager's ServiceAccount for this audience, so
	// the sink can check who calls it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Audience string `json:"audience,omitempty"`
}

// SinkReference names a Service port in the reactor's namespace.
type SinkReference struct {
	// Kind of the referenced object: Service.
	// +optional
	// +kubebuilder:default=Service
	// +kubebuilder:validation:Enum=Service
	Kind string `json:"kind,omitempty"`

	// Name is the name of the Service.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Port is the Service port events are posted to.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
}

// ReactorReply is where the events in a sink's answers go.
type ReactorReply struct {
	// Stream is the Stream, in the reactor's namespace, that the answers'
	// events are appended to. A stream that does not exist yet makes the
	// reactor Ready=False (StreamNotFound) and delivery waits.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Stream string `json:"stream"`
}

// ReactorDelivery sets how a Reactor delivers.
type ReactorDelivery struct {
	// Ordering is Ordered (one event at a time per stream), KeyOrdered
	// (each key in order, keys in parallel; the default) or Unordered.
	// +optional
	// +kubebuilder:default=KeyOrdered
	Ordering ReactorOrdering `json:"ordering,omitempty"`

	// MaxInFlight bounds the deliveries in flight (KeyOrdered, Unordered):
	// 1 to 1000, default 16.
	// +optional
	// +kubebuilder:default=16
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxInFlight int32 `json:"maxInFlight,omitempty"`

	// Timeout bounds one HTTP attempt: 1s to 5m, default 10s. A pipeline
	// Timeout bounds the whole handling of an event, retries included.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="must be a duration from 1s to 5m, such as 10s or 1m"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// ReactorStatus is the observed state of a Reactor.
type ReactorStatus struct {
	// ObservedGeneration is the metadata.generation of the spec that the
	// status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions describe the reactor's state. Ready is True (Running)
	// when it delivers; when it is False, its reason (SinkNotFound,
	// StreamNotFound, PipelineNotFound, InvalidSpec, Stalled) and message
	// say what to fix.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// SinkURI is the resolved address events are posted to.
	// +optional
	SinkURI string `json:"sinkURI,omitempty"`

	// EventsDelivered is the number of events the sink took (a 2xx).
	// +optional
	EventsDelivered int64 `json:"eventsDelivered"`

	// DeadLettered is the number of events that failed for good and went to
	// the dead-letter stream.
	// +optional
	DeadLettered int64 `json:"deadLettered"`

	// Lag is the number of events appended to the reactor's streams and
	// not yet done.
	// +optional
	Lag int64 `json:"lag"`
}

// Reactor delivers the events of streams to an HTTP endpoint, in order, and
// appends the events it answers with to a reply stream.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rx,categories=eventsourcing
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=`.status.sinkURI`
// +kubebuilder:printcolumn:name="Delivered",type=integer,JSONPath=`.status.eventsDelivered`
// +kubebuilder:printcolumn:name="Dead Lettered",type=integer,JSONPath=`.status.deadLettered`
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.lag`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Reactor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the reactor.
	// +required
	Spec ReactorSpec `json:"spec"`

	// Status is the observed state of the reactor, written by the manager.
	// +optional
	Status ReactorStatus `json:"status,omitempty"`
}

// ReactorList contains a list of Reactors.
// +kubebuilder:object:root=true
type ReactorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Reactor `json:"items"`
}
