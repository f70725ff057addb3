package core

import (
	"maps"
	"slices"
)

// StreamNames returns the names of the streams the engine has, sorted.
func (e *Engine) StreamNames() []string {
	return slices.Sorted(maps.Keys(*e.streams.Load()))
}

// ProjectionNames returns the names of the projections the engine has,
// sorted: those it runs and, standing by, those it recorded for the leader.
func (e *Engine) ProjectionNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := slices.Collect(maps.Keys(e.projections))
	names = slices.AppendSeq(names, maps.Keys(e.standby.projections))
	slices.Sort(names)
	return slices.Compact(names)
}

// ReactorNames returns the names of the reactors the engine has, sorted:
// those it runs and, standing by, those it recorded for the leader.
func (e *Engine) ReactorNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := slices.Collect(maps.Keys(e.reactors))
	names = slices.AppendSeq(names, maps.Keys(e.standby.reactors))
	slices.Sort(names)
	return slices.Compact(names)
}
