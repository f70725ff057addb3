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

// StartFrom is where a new projection starts reading its streams.
// +kubebuilder:validation:Enum=Beginning;Latest
type StartFrom string

// Where a new projection starts.
const (
	// StartFromBeginning replays the stored events first, then follows new
	// ones.
	StartFromBeginning StartFrom = "Beginning"
	// StartFromLatest follows only the events appended after the projection
	// starts.
	StartFromLatest StartFrom = "Latest"
)

// ReadModelType is how a projection folds events into its read model.
// +kubebuilder:validation:Enum=Append;Latest;Count;Reduce
type ReadModelType string

// The read model types.
const (
	// ReadModelAppend maps each key to the list of its events' payloads, in
	// stream order.
	ReadModelAppend ReadModelType = "Append"
	// ReadModelLatest maps each key to the payload of its newest event.
	ReadModelLatest ReadModelType = "Latest"
	// ReadModelCount maps each key to the number of its events.
	ReadModelCount ReadModelType = "Count"
	// ReadModelReduce maps each key to a state that CEL expressions fold
	// its events into (readModel.reduce).
	ReadModelReduce ReadModelType = "Reduce"
)

// ProjectionSpec is the desired state of a Projection.
type ProjectionSpec struct {
	// Streams are the names of the Streams, in the projection's namespace,
	// whose events it folds: at least one, each listed once. A stream that
	// does not exist yet makes the projection Ready=False (StreamNotFound)
	// until it is created.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Streams []string `json:"streams"`

	// PipelineRef names the Pipeline, in the projection's namespace, that
	// events pass through before they reach the read model. Without it the
	// projection uses the chain Deserialize, Logging, Retry, Metrics,
	// Dedupe. A pipeline that does not exist yet makes the projection
	// Ready=False (PipelineNotFound) until it is created.
	// +optional
	PipelineRef *PipelineReference `json:"pipelineRef,omitempty"`

	// EventNames, when set, limits the projection to events with these
	// names; other events are skipped.
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	EventNames []string `json:"eventNames,omitempty"`

	// StartFrom is where a new projection starts: Beginning replays the
	// events already stored and then follows new ones; Latest follows only
	// the events appended after it starts. Defaults to Beginning.
	// +optional
	// +kubebuilder:default=Beginning
	StartFrom StartFrom `json:"startFrom,omitempty"`

	// ReadModel is how events are folded into the projection's read model,
	// a JSON document that maps keys to values, served at status.queryPath.
	// +required
	ReadModel ReadModel `json:"readModel"`
}

// PipelineReference names a Pipeline in the same namespace.
type PipelineReference struct {
	// Name is the name of the Pipeline.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// ReadModel says how a projection folds events: under which key, and what
// it keeps per key. Exactly one of key and keyExpression is set; reduce is
// set with type Reduce, and only then.
// +kubebuilder:validation:XValidation:rule="has(self.key) != has(self.keyExpression)",message="set exactly one of key (a fixed key for every event) and keyExpression (a CEL expression giving each event's key)"
// +kubebuilder:validation:XValidation:rule="self.type != 'Reduce' || has(self.reduce)",message="type Reduce needs reduce: set reduce.initial (the state of a key before its first event) and reduce.expression (the next state from state and event)"
// +kubebuilder:validation:XValidation:rule="self.type == 'Reduce' || !has(self.reduce)",message="reduce is only for type Reduce: remove reduce, or set type: Reduce"
type ReadModel struct {
	// Type is what the read model keeps per key: Append (the list of event
	// payloads, in stream order), Latest (the newest payload), Count (the
	// number of events) or Reduce (a state that reduce folds the events
	// into).
	// +required
	Type ReadModelType `json:"type"`

	// Key is the fixed key that every event is folded under, such as items.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`

	// KeyExpression is a CEL expression on the variable event (fields id,
	// name, stream, sequence, key, version, time, headers, correlationId
	// and payload)
	// that gives each event's key, such as event.payload.sku. An expression
	// that does not compile makes the projection Ready=False; one that
	// fails on an event dead-letters that event.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	KeyExpression string `json:"keyExpression,omitempty"`

	// Reduce is how a Reduce read model folds each key's events. Required
	// with type Reduce, refused with the other types.
	// +optional
	Reduce *ReduceReadModel `json:"reduce,omitempty"`
}

// ReduceReadModel folds each key's events into a state with two CEL
// expressions. Both must give a JSON value (a map with string keys, a list,
// a string, a number, a bool or null). They are compiled and type-checked
// when the Projection is applied: an error makes it Ready=False with reason
// InvalidSpec. Every evaluation may cost at most 1,000,000 CEL cost units;
// an event whose evaluation fails or costs more is dead-lettered and leaves
// the state as it was.
type ReduceReadModel struct {
	// Initial is the state of a key before its first event, a CEL
	// expression without variables, such as {'total': 0, 'lines': 0}.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Initial string `json:"initial"`

	// Expression gives the key's next state from the variables state (its
	// current state) and event (fields as in keyExpression, with key and
	// version), such as {'total': state.total + event.payload.amount,
	// 'lines': state.lines + 1, 'status': event.name}. Whole numbers in
	// the state are ints and others doubles, as in JSON documents; CEL does
	// not add an int to a double, so convert with double(x) where they mix.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Expression string `json:"expression"`
}

// ProjectionStatus is the observed state of a Projection.
type ProjectionStatus struct {
	// ObservedGeneration is the metadata.generation of the spec that the
	// status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions describe the projection's state. Ready is True when it is
	// running; when it is False, its reason and message say what to fix
	// (for example StreamNotFound or PipelineNotFound). Rebuilding is True
	// while the read model is rebuilt for a changed spec (its message says
	// how far it is; queries answer the previous read model meanwhile), and
	// False once the rebuilt one has replaced it.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// EventsProcessed is the number of events folded into the read model.
	// +optional
	EventsProcessed int64 `json:"eventsProcessed"`

	// DeadLettered is the number of events that failed for good and went to
	// the dead-letter stream.
	// +optional
	DeadLettered int64 `json:"deadLettered"`

	// Lag is the number of events appended to the projection's streams and
	// not yet processed.
	// +optional
	Lag int64 `json:"lag"`

	// QueryPath is the HTTP path, on the manager's ingest address, that
	// serves the read model, such as /v1/namespaces/default/projections/items.
	// +optional
	QueryPath string `json:"queryPath,omitempty"`
}

// Projection consumes streams and folds their events into a read model (the
// read side of CQRS), served as JSON at status.queryPath.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=proj,categories=eventsourcing
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Processed",type=integer,JSONPath=`.status.eventsProcessed`
// +kubebuilder:printcolumn:name="Dead Lettered",type=integer,JSONPath=`.status.deadLettered`
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.lag`
// +kubebuilder:printcolumn:name="Query Path",type=string,JSONPath=`.status.queryPath`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Projection struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the projection.
	// +required
	Spec ProjectionSpec `json:"spec"`

	// Status is the observed state of the projection, written by the
	// manager.
	// +optional
	Status ProjectionStatus `json:"status,omitempty"`
}

// ProjectionList contains a list of Projections.
// +kubebuilder:object:root=true
type ProjectionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Projection `json:"items"`
}
