package controller

import (
	"context"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

// Engine is what the controllers need of the engine. The engine's Apply and
// Remove methods are idempotent, so a reconcile can call them every pass.
type Engine interface {
	ApplyStream(spec core.StreamSpec) error
	RemoveStream(name string)
	StreamStats(ctx context.Context, name string) (core.StreamStats, error)

	ApplyPipeline(spec core.PipelineSpec) error
	RemovePipeline(name string)

	ApplyProjection(ctx context.Context, spec core.ProjectionSpec) error
	RemoveProjection(ctx context.Context, name string) error
	ProjectionStats(ctx context.Context, name string) (core.ProjectionStats, error)

	ApplyReactor(ctx context.Context, spec core.ReactorSpec) error
	RemoveReactor(ctx context.Context, name string) error
	ReactorStats(ctx context.Context, name string) (core.ReactorStats, error)
}

// StatusRefresh is how often counters in status (lastSequence, lag, ...)
// are refreshed while nothing else triggers a reconcile. Never per event.
const StatusRefresh = 5 * time.Second

// RebuildRefresh is how often a Projection's Rebuilding condition is
// refreshed while its read model is rebuilt.
const RebuildRefresh = time.Second

// engineName is the engine-wide name of a namespaced object.
func engineName(namespace, name string) string { return namespace + "/" + name }
