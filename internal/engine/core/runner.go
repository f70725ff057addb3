package core

import (
	"context"
	"fmt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

// runner is one read model being folded: a projection, its route and why
// the route does not run. A projection has one, and a second while its read
// model is rebuilt.
type runner struct {
	// spec is what the runner folds; its Name names the route and the read
	// model in the store (the projection's name, or its rebuild's).
	spec ProjectionSpec
	// handler is the projection's name, which logs, metrics and dead
	// letters give the events the runner handles.
	handler string
	proj    *projection.Projection
	// waiting says why the runner does not run (a missing stream or
	// pipeline, a pipeline that does not build); nil when it runs.
	waiting error
	// paused keeps the runner's read model answering queries without
	// folding into it: the spec that built it is not known (see
	// resumeRebuild).
	paused bool
}

// newRunner builds the runner of spec under name, from the checkpoint
// stored under that name; a Latest one records where it starts first.
func (e *Engine) newRunner(ctx context.Context, spec ProjectionSpec, name string) (*runner, error) {
	spec.Name = name
	if spec.StartFrom == projection.Latest {
		if err := e.startAtEnd(ctx, spec.Streams, name); err != nil {
			return nil, err
		}
	}
	proj, err := projection.New(spec.Spec, e.cfg.ReadModels)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	return &runner{spec: spec, handler: handlerName(name), proj: proj}, nil
}

// rewire runs r when its streams and pipeline exist, with a freshly built
// chain, and stops it otherwise. Callers hold e.mu.
func (e *Engine) rewire(r *runner) {
	if r.paused {
		e.router.Remove(r.spec.Name)
		r.waiting = nil
		return
	}
	route, err := e.route(r)
	r.waiting = err
	if err != nil {
		e.router.Remove(r.spec.Name)
		return
	}
	if err := e.router.Add(route); err != nil {
		r.waiting = err
	}
}
