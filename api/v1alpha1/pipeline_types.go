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

// MiddlewareType names one kind of middleware.
// +kubebuilder:validation:Enum=Deserialize;Logging;Retry;Metrics;Dedupe;Timeout;Filter
type MiddlewareType string

// The middleware a Pipeline can list.
const (
	// MiddlewareDeserialize decodes the payload (bytes to value) by its
	// content type and the stream's schema; an undecodable event is
	// dead-lettered.
	MiddlewareDeserialize MiddlewareType = "Deserialize"
	// MiddlewareLogging logs one line per event at logging.level and every
	// failure at error.
	MiddlewareLogging MiddlewareType = "Logging"
	// MiddlewareRetry retries a failed event with exponential backoff.
	MiddlewareRetry MiddlewareType = "Retry"
	// MiddlewareMetrics records Prometheus metrics of the events it sees.
	MiddlewareMetrics MiddlewareType = "Metrics"
	// MiddlewareDedupe drops an event whose ID was handled within
	// dedupe.window.
	MiddlewareDedupe MiddlewareType = "Dedupe"
	// MiddlewareTimeout fails an attempt that takes longer than
	// timeout.after.
	MiddlewareTimeout MiddlewareType = "Timeout"
	// MiddlewareFilter skips (without failing) an event for which the CEL
	// condition filter.expression is false.
	MiddlewareFilter MiddlewareType = "Filter"
)

// LogLevel is the level of Logging's per-event lines.
// +kubebuilder:validation:Enum=debug;info
type LogLevel string

// The levels of Logging's per-event lines.
const (
	LogLevelDebug LogLevel = "debug"
	LogLevelInfo  LogLevel = "info"
)

// PipelineSpec is the desired state of a Pipeline.
type PipelineSpec struct {
	// Middleware is the chain, in order: an event passes through the
	// entries in the order listed, so the first entry is the outermost
	// (it sees the event first and the outcome last). At least one entry.
	// A projection that names no pipeline uses the chain
	// Deserialize, Logging, Retry, Metrics, Dedupe.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Middleware []Middleware `json:"middleware"`
}

// Middleware is one entry of a Pipeline: a type and, for the types that have
// settings, those settings under the field named after the type (retry for
// Retry, and so on). Settings are allowed only on the entry of their type.
// +kubebuilder:validation:XValidation:rule="!has(self.logging) || self.type == 'Logging'",message="logging settings apply only to type Logging: remove logging from this entry, or set type: Logging",fieldPath=".logging",reason="FieldValueForbidden"
// +kubebuilder:validation:XValidation:rule="!has(self.retry) || self.type == 'Retry'",message="retry settings apply only to type Retry: remove retry from this entry, or set type: Retry",fieldPath=".retry",reason="FieldValueForbidden"
// +kubebuilder:validation:XValidation:rule="!has(self.dedupe) || self.type == 'Dedupe'",message="dedupe settings apply only to type Dedupe: remove dedupe from this entry, or set type: Dedupe",fieldPath=".dedupe",reason="FieldValueForbidden"
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || self.type == 'Timeout'",message="timeout settings apply only to type Timeout: remove timeout from this entry, or set type: Timeout",fieldPath=".timeout",reason="FieldValueForbidden"
// +kubebuilder:validation:XValidation:rule="!has(self.filter) || self.type == 'Filter'",message="filter settings apply only to type Filter: remove filter from this entry, or set type: Filter",fieldPath=".filter",reason="FieldValueForbidden"
// +kubebuilder:validation:XValidation:rule="self.type != 'Timeout' || has(self.timeout)",message="type Timeout needs timeout.after, the time limit of each attempt (for example 5s)",fieldPath=".timeout",reason="FieldValueRequired"
// +kubebuilder:validation:XValidation:rule="self.type != 'Filter' || has(self.filter)",message="type Filter needs filter.expression, a CEL condition on event (for example event.name == 'ItemCreated')",fieldPath=".filter",reason="FieldValueRequired"
type Middleware struct {
	// Type is the middleware: Deserialize, Logging, Retry, Metrics, Dedupe,
	// Timeout or Filter.
	// +required
	Type MiddlewareType `json:"type"`

	// Logging sets the Logging middleware; only with type Logging.
	// +optional
	Logging *LoggingSettings `json:"logging,omitempty"`

	// Retry sets the Retry middleware; only with type Retry.
	// +optional
	Retry *RetrySettings `json:"retry,omitempty"`

	// Dedupe sets the Dedupe middleware; only with type Dedupe.
	// +optional
	Dedupe *DedupeSettings `json:"dedupe,omitempty"`

	// Timeout sets the Timeout middleware; required with type Timeout and
	// only allowed there.
	// +optional
	Timeout *TimeoutSettings `json:"timeout,omitempty"`

	// Filter sets the Filter middleware; required with type Filter and only
	// allowed there.
	// +optional
	Filter *FilterSettings `json:"filter,omitempty"`
}

// LoggingSettings configure the Logging middleware.
type LoggingSettings struct {
	// Level is the level of the per-event lines: debug or info. Failures
	// are always logged at error. Defaults to debug.
	// +optional
	// +kubebuilder:default=debug
	Level LogLevel `json:"level,omitempty"`
}

// RetrySettings configure the Retry middleware: after a failure it waits
// initialBackoff, then a wait multiplied by multiplier after each further
// failure, capped at maxBackoff, until maxAttempts attempts have failed.
// The event is then dead-lettered.
// +kubebuilder:validation:XValidation:rule="!has(self.initialBackoff) || !has(self.maxBackoff) || !self.initialBackoff.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || !self.maxBackoff.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.initialBackoff) <= duration(self.maxBackoff)",message="initialBackoff must not be longer than maxBackoff: lower initialBackoff or raise maxBackoff",fieldPath=".initialBackoff"
type RetrySettings struct {
	// MaxAttempts is how many times an event is tried at most, the first
	// attempt included. Defaults to 5; at least 1.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	MaxAttempts int32 `json:"maxAttempts,omitempty"`

	// InitialBackoff is the wait after the first failure, a positive
	// duration such as 100ms, 2s or 1m30s. Defaults to 100ms.
	// +optional
	// +kubebuilder:default="100ms"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s')",message="must be a positive duration such as 100ms, 2s or 1m30s"
	InitialBackoff *metav1.Duration `json:"initialBackoff,omitempty"`

	// MaxBackoff caps every wait, a positive duration such as 10s or 1m.
	// Defaults to 10s.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s')",message="must be a positive duration such as 10s or 1m"
	MaxBackoff *metav1.Duration `json:"maxBackoff,omitempty"`

	// Multiplier is the factor the wait grows by after each further
	// failure; 1 keeps it constant. Defaults to 2; at least 1.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	Multiplier int32 `json:"multiplier,omitempty"`
}

// DedupeSettings configure the Dedupe middleware.
type DedupeSettings struct {
	// Window is how long an event ID is remembered once its event was
	// handled: a message with the same ID within the window is dropped.
	// A positive duration such as 10m or 1h. Defaults to 10m.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s')",message="must be a positive duration such as 10m or 1h"
	Window *metav1.Duration `json:"window,omitempty"`
}

// TimeoutSettings configure the Timeout middleware.
type TimeoutSettings struct {
	// After is the time limit of each attempt, a positive duration such as
	// 5s or 500ms. An attempt that takes longer fails (and may be retried
	// by a Retry entry listed before this one).
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s')",message="must be a positive duration such as 5s or 500ms"
	After metav1.Duration `json:"after"`
}

// FilterSettings configure the Filter middleware.
type FilterSettings struct {
	// Expression is a CEL condition on the variable event (fields id, name,
	// stream, sequence, time, headers, correlationId and payload), such as
	// event.name == 'ItemCreated'. An event for which it is false is
	// skipped, not failed. An expression that does not compile makes the
	// pipeline Ready=False; one that fails on an event dead-letters that
	// event.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Expression string `json:"expression"`
}

// PipelineStatus is the observed state of a Pipeline.
type PipelineStatus struct {
	// ObservedGeneration is the metadata.generation of the spec that the
	// status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions describe the pipeline's state. Ready is True when the
	// chain is built; when it is False, its reason and message say what to
	// fix (for example a Filter expression that does not compile).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// Pipeline is an ordered middleware chain that projections pass their
// events through (spec.pipelineRef of a Projection).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pipe,categories=eventsourcing
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Pipeline struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the pipeline.
	// +required
	Spec PipelineSpec `json:"spec"`

	// Status is the observed state of the pipeline, written by the manager.
	// +optional
	Status PipelineStatus `json:"status,omitempty"`
}

// PipelineList contains a list of Pipelines.
// +kubebuilder:object:root=true
type PipelineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Pipeline `json:"items"`
}
