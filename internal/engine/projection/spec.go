package projection

import (
	"errors"
	"fmt"
	"slices"
)

// ReadModelType is how a projection folds events into its read model.
type ReadModelType string

const (
	// Append keeps, per key, the list of event payloads in stream order.
	Append ReadModelType = "Append"
	// Count keeps, per key, the number of events.
	Count ReadModelType = "Count"
	// Reduce keeps, per key, a state that Spec.Reducer folds each event
	// into.
	Reduce ReadModelType = "Reduce"
)

// Reducer is how a Reduce read model folds a key's events: two CEL
// expressions (see package celexpr).
type Reducer struct {
	// Initial gives a key's state before its first event, e.g.
	// "{'total': 0}". It sees no variables.
	Initial string
	// Expression gives a key's next state from state, its current one, and
	// event, e.g. "{'total': state.total + event.payload.amount}".
	Expression string
}

// StartFrom says where a new projection (one with no checkpoint) starts
// reading its streams. The router acts on it; the projection only carries it.
type StartFrom string

// Beginning replays the events already stored, then follows new ones.
const Beginning StartFrom = "Beginning"

// Latest is both a ReadModelType, which keeps per key the payload of the
// newest event, and a StartFrom, which skips the events already stored and
// follows only new ones. The two share the spelling the API uses, so the
// constant is untyped and serves as either.
const Latest = "Latest"

// Spec is what a Projection is built from: the engine's view of a
// Projection object.
type Spec struct {
	// Name identifies the projection uniquely, e.g. "namespace/name". It is
	// also the read model's name in the store.
	Name string
	// Streams are the streams the projection consumes.
	Streams []string
	// EventNames, when set, limits the projection to events with these
	// names; others are skipped (and still checkpointed).
	EventNames []string
	// StartFrom is where a projection with no checkpoint starts; empty means
	// Beginning.
	StartFrom StartFrom
	// Type is how events are folded into the read model.
	Type ReadModelType
	// Key is the fixed key every event is folded under. Exactly one of Key
	// and KeyExpression is set.
	Key string
	// KeyExpression is a CEL expression giving each event's key (see
	// package celexpr), e.g. "event.payload.sku".
	KeyExpression string
	// Reducer is set with Type Reduce, and only then.
	Reducer Reducer
}

// Validate reports every problem with s, each saying what to fix. It does
// not compile KeyExpression or Reducer; New does.
func (s Spec) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("name: must be set"))
	}
	if len(s.Streams) == 0 {
		errs = append(errs, errors.New("streams: name at least one stream"))
	}
	if slices.Contains(s.Streams, "") {
		errs = append(errs, errors.New("streams: a stream name is empty"))
	}
	switch s.Type {
	case Append, Latest, Count:
		if s.Reducer != (Reducer{}) {
			errs = append(errs, fmt.Errorf(
				"readModel.reduce: only type Reduce folds with expressions, not %s: remove reduce or set type Reduce", s.Type))
		}
	case Reduce:
		if s.Reducer.Initial == "" {
			errs = append(errs, errors.New(
				"readModel.reduce.initial: set the state of a key before its first event, such as {'total': 0}"))
		}
		if s.Reducer.Expression == "" {
			errs = append(errs, errors.New("readModel.reduce.expression: set the next state from state and event, "+
				"such as {'total': state.total + event.payload.amount}"))
		}
	default:
		errs = append(errs, fmt.Errorf("readModel.type: %q is not one of Append, Latest, Count, Reduce", s.Type))
	}
	switch s.StartFrom {
	case "", Beginning, Latest:
	default:
		errs = append(errs, fmt.Errorf("startFrom: %q is not one of Beginning, Latest", s.StartFrom))
	}
	switch {
	case s.Key == "" && s.KeyExpression == "":
		errs = append(errs, errors.New("readModel: set key or keyExpression"))
	case s.Key != "" && s.KeyExpression != "":
		errs = append(errs, errors.New("readModel: set only one of key and keyExpression, not both"))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("projection %q: %w", s.Name, errors.Join(errs...))
}

// clone returns s with its own slices.
func (s Spec) clone() Spec {
	s.Streams = slices.Clone(s.Streams)
	s.EventNames = slices.Clone(s.EventNames)
	return s
}
