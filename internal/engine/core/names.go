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
	return keysOfBoth(e.projections, e.standby.projections)
}

// ReactorNames returns the names of the reactors the engine has, sorted:
// those it runs and, standing by, those it recorded for the leader.
func (e *Engine) ReactorNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return keysOfBoth(e.reactors, e.standby.reactors)
}

// keysOfBoth returns the keys of a and b, sorted, each once.
func keysOfBoth[A, B any](a map[string]A, b map[string]B) []string {
	names := slices.Collect(maps.Keys(a))
	names = slices.AppendSeq(names, maps.Keys(b))
	slices.Sort(names)
	return slices.Compact(names)
}
