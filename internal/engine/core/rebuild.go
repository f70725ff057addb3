package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// A rebuild folds a changed spec's read model under a name of its own,
// beside the read model queries read, which goes on following its streams.
// Once the new one has caught up, it is moved in place of the old one in
// one store operation (readmodel.Store.Move), so a query reads one or the
// other, never an empty or half-built one.
//
// The rebuild's name holds a digest of the spec's fold, and its read model
// is created (with its checkpoint) as the rebuild starts. After a restart,
// the first ApplyProjection of the projection finds the rebuild of the very
// spec it is given and goes on with it; the spec of the read model queries
// read is not known then, so that one answers queries without following
// its streams until the rebuild replaces it. Rebuilds of other specs are
// deleted.

// rebuildSeparator joins a projection's name and its rebuild's digest. It
// cannot occur in a Kubernetes object's name.
const rebuildSeparator = "#rebuild-"

// rebuildName is the name of the read model a rebuild of spec folds.
func rebuildName(spec ProjectionSpec) string {
	names := slices.Clone(spec.EventNames)
	slices.Sort(names)
	start := spec.StartFrom
	if start == "" {
		start = projection.Beginning
	}
	h := sha256.New()
	for _, f := range append([]string{string(spec.Type), spec.Key, spec.KeyExpression,
		spec.Reducer.Initial, spec.Reducer.Expression, string(start)}, names...) {
		_, _ = fmt.Fprintf(h, "%d:%s", len(f), f) // a hash.Hash never fails to write
	}
	return spec.Name + rebuildSeparator + hex.EncodeToString(h.Sum(nil)[:8])
}

// handlerName is the projection a runner's name belongs to.
func handlerName(name string) string {
	handler, _, _ := strings.Cut(name, rebuildSeparator)
	return handler
}

// storedRebuilds lists the rebuilds of the projection that the store holds,
// when it can list its read models.
func (e *Engine) storedRebuilds(ctx context.Context, name string) ([]string, error) {
	l, ok := e.cfg.ReadModels.(readmodel.CheckpointLister)
	if !ok {
		return nil, nil
	}
	all, err := l.Checkpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("list read models: %w", err)
	}
	var out []string
	for stored := range all {
		if strings.HasPrefix(stored, name+rebuildSeparator) {
			out = append(out, stored)
		}
	}
	return out, nil
}

// startRebuild starts folding spec's read model beside the projection's,
// in place of a rebuild already running. A spec that does not compile
// changes nothing.
func (e *Engine) startRebuild(ctx context.Context, st *projectionState, spec ProjectionSpec) error {
	name := rebuildName(spec)
	check := spec
	check.Name = name
	if _, err := projection.New(check.Spec, e.cfg.ReadModels); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if err := e.dropRebuild(ctx, st); err != nil {
		return err
	}
	// What an earlier rebuild of the same spec left starts over.
	if err := e.cfg.ReadModels.Delete(ctx, name); err != nil {
		return fmt.Errorf("delete read model %q: %w", name, err)
	}
	r, err := e.newRunner(ctx, spec, name)
	if err != nil {
		return err
	}
	// The read model exists from now on, so a restart finds the rebuild,
	// and its checkpoint holds retention back from what it has to fold (a
	// Latest one recorded its start already).
	if spec.StartFrom != projection.Latest {
		start := make(readmodel.Checkpoint, len(spec.Streams))
		for _, s := range spec.Streams {
			start[s] = 0
		}
		if err := e.cfg.ReadModels.Apply(ctx, name, nil, start); err != nil {
			return fmt.Errorf("start rebuild %q: %w", name, err)
		}
	}
	st.rebuild = r
	e.rewire(r)
	e.cfg.Logger.Info("rebuilding a read model; queries read the previous one until it has caught up",
		"projection", spec.Name)
	return nil
}

// resumeRebuild builds, after a restart, a projection whose rebuild of
// spec the store holds: the rebuild goes on, and the read model queries
// read answers them without following its streams.
func (e *Engine) resumeRebuild(spec ProjectionSpec) (*projectionState, error) {
	serving, err := projection.New(spec.Spec, e.cfg.ReadModels)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	rebuild := spec
	rebuild.Name = rebuildName(spec)
	proj, err := projection.New(rebuild.Spec, e.cfg.ReadModels)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	st := &projectionState{
		spec:    spec,
		serving: &runner{spec: spec, handler: spec.Name, proj: serving, paused: true},
		rebuild: &runner{spec: rebuild, handler: spec.Name, proj: proj},
	}
	e.rewire(st.serving)
	e.rewire(st.rebuild)
	return st, nil
}

// dropRebuild stops the projection's rebuild, if any, and deletes its read
// model.
func (e *Engine) dropRebuild(ctx context.Context, st *projectionState) error {
	if st.rebuild == nil {
		return nil
	}
	name := st.rebuild.spec.Name
	e.router.Remove(name)
	st.rebuild = nil
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.ForgetHandler(name)
	}
	if err := e.cfg.ReadModels.Delete(ctx, name); err != nil {
		return fmt.Errorf("delete read model %q: %w", name, err)
	}
	return nil
}

// rebuildLoop replaces each read model being rebuilt by the new one once
// it has caught up, checking every RebuildCheckInterval until ctx ends.
func (e *Engine) rebuildLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.RebuildCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.finishRebuilds(ctx)
	}
}

// finishRebuilds replaces every read model whose rebuild has caught up.
func (e *Engine) finishRebuilds(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, st := range e.projections {
		if st.rebuild == nil || st.rebuild.waiting != nil {
			continue
		}
		caught, err := e.caughtUp(ctx, st)
		if err == nil && caught {
			err = e.finishRebuild(ctx, st)
		}
		if err != nil && ctx.Err() == nil {
			e.cfg.Logger.Error("read model rebuild could not finish; trying again", "projection", st.spec.Name, "error", err)
		}
	}
}

// caughtUp reports whether the rebuild has applied everything its streams
// hold, or is at least as close to their end as the read model it
// replaces, so that the swap never makes answers older.
func (e *Engine) caughtUp(ctx context.Context, st *projectionState) (bool, error) {
	rebuildLag, err := e.lag(ctx, st.rebuild)
	if err != nil || rebuildLag == 0 {
		return err == nil, err
	}
	servingLag, err := e.lag(ctx, st.serving)
	return err == nil && rebuildLag <= servingLag, err
}

// lag is how many events of its streams r has not handled yet.
func (e *Engine) lag(ctx context.Context, r *runner) (uint64, error) {
	versions, err := e.streamVersions(ctx, r.spec.Streams)
	if err != nil {
		return 0, err
	}
	return r.proj.Stats().Lag(versions), nil
}

// streamVersions reads each stream's last sequence.
func (e *Engine) streamVersions(ctx context.Context, streams []string) (map[string]uint64, error) {
	versions := make(map[string]uint64, len(streams))
	for _, s := range streams {
		v, err := e.cfg.Store.Version(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("read version of stream %q: %w", s, err)
		}
		versions[s] = v
	}
	return versions, nil
}

// finishRebuild stops both runners, moves the rebuilt read model in place
// of the old one, and runs it as the projection. When the move fails, both
// go on as they were.
func (e *Engine) finishRebuild(ctx context.Context, st *projectionState) error {
	rb := st.rebuild
	e.router.Remove(st.serving.spec.Name)
	e.router.Remove(rb.spec.Name)
	if err := rb.proj.MoveTo(ctx, st.spec.Name); err != nil {
		e.rewire(st.serving)
		e.rewire(rb)
		return err
	}
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.ForgetHandler(rb.spec.Name)
	}
	rb.spec.Name = st.spec.Name
	st.serving, st.rebuild = rb, nil
	e.rewire(st.serving)
	e.cfg.Logger.Info("read model rebuilt; queries read it now", "projection", st.spec.Name)
	return nil
}
