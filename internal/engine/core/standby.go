package core

import (
	"context"
	"errors"
)

// standby holds the projections and reactors a standby engine knows of but
// does not run (Config.Standby): another replica, the leader, runs them
// on the shared storage. A standby engine takes events and answers reads
// and queries; its Apply and Remove of projections and reactors only
// record the specs, so it writes nothing a leader owns (read models,
// checkpoints, rebuilds). Run makes it active with what was recorded.
type standby struct {
	on          bool
	projections map[string]ProjectionSpec
	reactors    map[string]ReactorSpec
}

// activate applies what the standby engine recorded, as an active engine
// would have on each Apply, once Run starts (on the replica that became the
// leader). A spec that fails here is logged; its controller applies it again
// and reports the error.
func (e *Engine) activate(ctx context.Context) {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	e.mu.Lock()
	if !e.standby.on {
		e.mu.Unlock()
		return
	}
	projections, reactors := e.standby.projections, e.standby.reactors
	e.standby = standby{}
	e.mu.Unlock()
	for _, spec := range projections {
		if err := e.applyProjection(ctx, spec); err != nil && !waitingErr(err) {
			e.cfg.Logger.Warn("projection recorded while standing by did not start", "projection", spec.Name, "error", err)
		}
	}
	for _, spec := range reactors {
		if err := e.applyReactor(ctx, spec); err != nil && !waitingErr(err) {
			e.cfg.Logger.Warn("reactor recorded while standing by did not start", "reactor", spec.Name, "error", err)
		}
	}
}

// waitingErr reports an error that says a projection or reactor waits for
// its stream or pipeline: it is registered and starts by itself.
func waitingErr(err error) bool {
	return errors.Is(err, ErrStreamNotFound) || errors.Is(err, ErrPipelineNotFound)
}

// recordProjection records spec on a standby engine and reports whether it did;
// mu is held.
func (s *standby) recordProjection(spec ProjectionSpec) bool {
	if !s.on {
		return false
	}
	s.projections[spec.Name] = spec
	return true
}

func (s *standby) recordReactor(spec ReactorSpec) bool {
	if !s.on {
		return false
	}
	s.reactors[spec.Name] = spec
	return true
}

// forgetProjection drops a recorded projection and reports whether the
// engine stands by.
func (s *standby) forgetProjection(name string) bool {
	delete(s.projections, name)
	return s.on
}

func (s *standby) forgetReactor(name string) bool {
	delete(s.reactors, name)
	return s.on
}

// hasProjection reports a projection recorded while standing by; mu is held.
func (s *standby) hasProjection(name string) bool {
	_, ok := s.projections[name]
	return ok
}

func (s *standby) hasReactor(name string) bool {
	_, ok := s.reactors[name]
	return ok
}
