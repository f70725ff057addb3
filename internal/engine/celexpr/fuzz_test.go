package celexpr_test

import (
	"context"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/celexpr"
)

// FuzzExpressions feeds arbitrary text to every compiler and evaluates what
// compiles: bad input must give errors, never panics.
func FuzzExpressions(f *testing.F) {
	for _, seed := range []string{
		"event.payload.sku", "event.name == 'x'", "event.headers['a']",
		"event.payload.?x.orValue(1)", "has(event.payload.tags)", "event.time",
		"eventsourcing.v1alpha1.Event{id: 'x'}", "type(event) == type(event)", "event == event",
		"[1,2].map(x, event.payload.n + x)", "event(", "event.sequence / 0",
		"{'n': state.n + 1}", "{1: state}", "dyn(event.time)", "[state, state]",
	} {
		f.Add(seed)
	}
	msg := sample()
	f.Fuzz(func(_ *testing.T, expr string) {
		if p, err := celexpr.CompileKey(expr); err == nil {
			_, _ = p.Key(context.Background(), msg)
		}
		if p, err := celexpr.CompileFilter(expr); err == nil {
			_, _ = p.Match(context.Background(), msg)
		}
		if initial, err := celexpr.EvalInitial(expr); err == nil {
			if r, err := celexpr.CompileReduce(expr); err == nil {
				_, _ = r.Next(context.Background(), initial, msg)
			}
		}
		if r, err := celexpr.CompileReduce(expr); err == nil {
			_, _ = r.Next(context.Background(), map[string]any{"n": int64(1)}, msg)
		}
	})
}
