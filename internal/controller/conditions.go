// Package controller holds one reconciler per kind (Stream, Pipeline,
// Projection, Reactor). Each turns its object into an engine spec, calls the
// engine's idempotent Apply and Remove methods through the small Engine
// interface declared here, and writes status from the engine's stats: a finalizer,
// one status patch per pass (skipped when nothing changed, and never the
// start of another pass: predicates.go), conditions with CamelCase reasons,
// and a terminal error for a spec the user must fix.
package controller

// Condition types every kind reports.
const (
	// ConditionReady says whether the object works in the engine.
	ConditionReady = "Ready"
	// ConditionRebuilding says whether a Projection's read model is being
	// rebuilt for a changed spec while queries read the previous one.
	ConditionRebuilding = "Rebuilding"
)

// Reasons of the Ready condition. CamelCase, as Kubernetes conditions use.
const (
	// ReasonActive: the stream takes events.
	ReasonActive = "Active"
	// ReasonRunning: the projection consumes its streams.
	ReasonRunning = "Running"
	// ReasonApplied: the pipeline is built and in use by its projections.
	ReasonApplied = "Applied"
	// ReasonInvalidSchema: an Avro schema or protobuf message type is unusable.
	ReasonInvalidSchema = "InvalidSchema"
	// ReasonDescriptorSetNotFound: the ConfigMap or key with the protobuf
	// descriptor set is missing.
	ReasonDescriptorSetNotFound = "DescriptorSetNotFound"
	// ReasonInvalidSpec: a setting the engine refuses (CEL that does not
	// compile, an out-of-range value).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonStreamNotFound: a projection names a stream that does not exist.
	ReasonStreamNotFound = "StreamNotFound"
	// ReasonPipelineNotFound: a projection names a pipeline that does not exist.
	ReasonPipelineNotFound = "PipelineNotFound"
	// ReasonSinkNotFound: a reactor's sink names a Service that does not exist.
	ReasonSinkNotFound = "SinkNotFound"
	// ReasonStalled: the projection cannot make progress (its read model or
	// the outbox keeps failing); the message says why.
	ReasonStalled = "Stalled"
	// ReasonEngineError: the engine failed for a reason outside the spec.
	ReasonEngineError = "EngineError"
)

// Reasons of the Rebuilding condition.
const (
	// ReasonCatchingUp: the new read model is being folded; the message
	// says how far it is.
	ReasonCatchingUp = "CatchingUp"
	// ReasonRebuilt: the read model queries read is the spec's.
	ReasonRebuilt = "Rebuilt"
)

// finalizer makes deletion remove the object from the engine first.
const finalizer = "eventsourcing.dev/engine"
