package core

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/middleware"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

// StreamSpec is what the engine needs to know of a Stream.
type StreamSpec struct {
	// Name is the engine-wide name; the operator uses "namespace/name".
	Name string
	// ContentTypes are the wire formats ingest accepts (default JSON).
	ContentTypes []string
	// DefaultEventName names events whose request names none.
	DefaultEventName string
	// Schema describes Avro and Protobuf payloads.
	Schema serde.Schema
	// BacklogLimit bounds each subscriber's broker queue (default 1000); a
	// subscriber that fills it catches up from the store instead.
	BacklogLimit int
	// DeadLetterStream receives the events that fail for good in projections
	// reading this stream (default Config.DeadLetterStream).
	DeadLetterStream string
	// Retention bounds what the event store keeps of the stream; the zero
	// value keeps everything. See Retention.
	Retention Retention
}

// Middleware types a Pipeline can list.
const (
	Deserialize = "Deserialize"
	Logging     = "Logging"
	Retry       = "Retry"
	Metrics     = "Metrics"
	Dedupe      = "Dedupe"
	Timeout     = "Timeout"
	Filter      = "Filter"
)

// middlewareTypes lists the types above, in the order docs/pipelines.md
// gives them.
var middlewareTypes = []string{Deserialize, Logging, Retry, Metrics, Dedupe, Timeout, Filter}

// MiddlewareSpec is one entry of a pipeline. Only the settings of its Type
// may be set.
type MiddlewareSpec struct {
	Type string
	// LogLevel is the level of the per-event lines of Logging (default debug).
	LogLevel slog.Level
	Retry    *middleware.RetryConfig
	Dedupe   *middleware.DedupeConfig
	// TimeoutAfter is the per-attempt limit of Timeout.
	TimeoutAfter time.Duration
	// FilterExpression is the CEL condition of Filter.
	FilterExpression string
}

// PipelineSpec is an ordered middleware chain; the first entry is outermost.
type PipelineSpec struct {
	Name       string
	Middleware []MiddlewareSpec
}

// DefaultPipeline is the chain of a projection that names no pipeline:
// Deserialize, Logging, Retry, Metrics, Dedupe.
func DefaultPipeline() PipelineSpec {
	return PipelineSpec{Middleware: []MiddlewareSpec{
		{Type: Deserialize},
		{Type: Logging, LogLevel: slog.LevelDebug},
		{Type: Retry},
		{Type: Metrics},
		{Type: Dedupe},
	}}
}

// ProjectionSpec is what the engine needs to know of a Projection.
type ProjectionSpec struct {
	projection.Spec
	// Pipeline names the pipeline; empty means DefaultPipeline.
	Pipeline string
}

// Errors the controllers turn into conditions.
var (
	// ErrStreamNotFound: a projection names a stream the engine does not have,
	// or ingest/read names an unknown stream.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrPipelineNotFound: a projection names a pipeline the engine does not have.
	ErrPipelineNotFound = errors.New("pipeline not found")
	// ErrProjectionNotFound: a query names an unknown projection.
	ErrProjectionNotFound = errors.New("projection not found")
	// ErrReactorNotFound: ReactorStats names an unknown reactor.
	ErrReactorNotFound = errors.New("reactor not found")
	// ErrInvalidSpec wraps every problem with a spec that the user must fix.
	ErrInvalidSpec = errors.New("invalid spec")
	// ErrStopped is returned by Ingest once the engine is shutting down.
	ErrStopped = errors.New("engine stopped")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
}

// validate checks the pipeline's shape; building it checks the settings.
func (p PipelineSpec) validate() error {
	for i, m := range p.Middleware {
		if !slices.Contains(middlewareTypes, m.Type) {
			return invalid("middleware[%d]: unknown type %q, want one of %v", i, m.Type, middlewareTypes)
		}
		if m.Retry != nil && m.Type != Retry {
			return invalid("middleware[%d]: retry settings given for a %s entry", i, m.Type)
		}
		if m.Dedupe != nil && m.Type != Dedupe {
			return invalid("middleware[%d]: dedupe settings given for a %s entry", i, m.Type)
		}
		if m.TimeoutAfter != 0 && m.Type != Timeout {
			return invalid("middleware[%d]: timeout settings given for a %s entry", i, m.Type)
		}
		if m.FilterExpression != "" && m.Type != Filter {
			return invalid("middleware[%d]: filter settings given for a %s entry", i, m.Type)
		}
		if m.Type == Timeout && m.TimeoutAfter <= 0 {
			return invalid("middleware[%d]: Timeout needs a positive duration", i)
		}
		if m.Type == Filter && m.FilterExpression == "" {
			return invalid("middleware[%d]: Filter needs an expression", i)
		}
	}
	return nil
}
