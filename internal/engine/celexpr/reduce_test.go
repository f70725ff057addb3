package celexpr_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/celexpr"
)

func TestEvalInitialGivesJSONValues(t *testing.T) {
	tests := []struct {
		expr string
		want any
	}{
		{"{'total': 0, 'lines': 0}", map[string]any{"total": int64(0), "lines": int64(0)}},
		{"{'total': 0.0, 'avg': 0.5}", map[string]any{"total": int64(0), "avg": 0.5}},
		{"[]", []any{}},
		{"['a', 1, true, null, {'x': [2u]}]", []any{"a", int64(1), true, nil, map[string]any{"x": []any{int64(2)}}}},
		{"'new'", "new"},
		{"null", nil},
		{"'abc'.upperAscii()", "ABC"},
		{"dyn({'a': 1})", map[string]any{"a": int64(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := celexpr.EvalInitial(tt.expr)
			if err != nil {
				t.Fatalf("eval: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("eval %q: got %#v, want %#v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestReduceCompileErrorsSayWhatToFix(t *testing.T) {
	tests := []struct {
		name    string
		initial bool // EvalInitial, else CompileReduce
		expr    string
		want    []string
	}{
		{"initial sees no event", true, "{'n': event.sequence}", []string{"undeclared reference to 'event'"}},
		{"initial sees no state", true, "state", []string{"undeclared reference to 'state'"}},
		{"initial of timestamp type", true, "timestamp('2026-01-01T00:00:00Z')",
			[]string{"gives google.protobuf.Timestamp", "want a JSON value"}},
		{"initial that fails", true, "{'n': 1 / 0}", []string{"division by zero"}},
		{"initial syntax error", true, "{'n': ", []string{"Syntax error", "<input>:1:"}},
		{"expression syntax error", false, "state +", []string{"Syntax error"}},
		{"unknown event field", false, "{'n': event.nmae}", []string{"undefined field 'nmae'", "<input>:1:12"}},
		{"unknown variable", false, "stat.total + 1", []string{"undeclared reference to 'stat'"}},
		{"bytes", false, "b'abc'", []string{"gives bytes", "want a JSON value"}},
		{"timestamp", false, "event.time", []string{"gives google.protobuf.Timestamp"}},
		{"map with int keys", false, "{1: state}", []string{"gives map(int, dyn)", "a map with string keys"}},
		{"list of durations", false, "[duration('1s')]", []string{"gives list(google.protobuf.Duration)"}},
		{"optional", false, "state.?total", []string{"gives optional_type(dyn)"}},
		{"the event itself", false, "event", []string{"gives eventsourcing.v1alpha1.Event"}},
		{"mistyped operands", false, "{'n': event.sequence + 'x'}", []string{"no matching overload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.initial {
				_, err = celexpr.EvalInitial(tt.expr)
			} else {
				_, err = celexpr.CompileReduce(tt.expr)
			}
			if err == nil {
				t.Fatalf("compile %q: got nil, want an error containing %q", tt.expr, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("compile %q: got error %q, want it to contain %q", tt.expr, err, w)
				}
			}
		})
	}
}

func TestReduceFoldsStateAndEvent(t *testing.T) {
	const expr = "{'total': state.total + event.payload.count, 'lines': state.lines + 1, " +
		"'status': event.name, 'last': event.key + '@' + string(event.version), 'price': double(state.price) + event.payload.price}"
	r, err := celexpr.CompileReduce(expr)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	state := any(map[string]any{"total": int64(10), "lines": int64(1), "price": 0.5})
	for range 2 {
		if state, err = r.Next(context.Background(), state, sample()); err != nil {
			t.Fatalf("next: %v", err)
		}
	}
	want := map[string]any{"total": int64(16), "lines": int64(3), "status": "ItemCreated", "last": "order-7@5", "price": 5.5}
	if !reflect.DeepEqual(state, want) {
		t.Errorf("state: got %#v, want %#v", state, want)
	}
}

func TestReduceResultsAreJSONValues(t *testing.T) {
	tests := []struct {
		expr string
		want any
	}{
		{"state", map[string]any{"n": int64(1)}},
		{"double(state.n) * 2.0", int64(2)}, // a whole double is an integer, as JSON decodes it
		{"double(state.n) / 4.0", 0.25},
		{"1e300 * 10.0", 1e301},
		{"uint(event.sequence)", int64(42)},
		{"event.payload.tags + ['more']", []any{"new", "more"}},
		{"event.headers", map[string]any{"ce-source": "shop", "tenant": "acme"}},
		{"event.payload.nested", map[string]any{"ok": true}},
		{"{'k': null}", map[string]any{"k": nil}},
		{"string(event.time)", "2026-01-02T03:04:05Z"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			r, err := celexpr.CompileReduce(tt.expr)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := r.Next(context.Background(), map[string]any{"n": int64(1)}, sample())
			if err != nil {
				t.Fatalf("next: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("next %q: got %#v, want %#v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestReduceEvaluationErrors(t *testing.T) {
	tests := []struct {
		name  string
		expr  string
		state any
		want  string
	}{
		{"missing state key", "{'n': state.total + 1}", map[string]any{}, "no such key: total"},
		// A whole double in the state is an int, as JSON has it: adding a
		// double to it needs double(state.n).
		{"int plus double", "{'n': state.n + event.payload.price}", map[string]any{"n": int64(1)}, "no such overload"},
		{"a timestamp in dyn", "{'at': dyn(event.time)}", nil, "google.protobuf.Timestamp"},
		{"bytes in a payload", "event.payload.blob", nil, "bytes"},
		{"a map with int keys in dyn", "dyn({1: 'a'})", nil, "a JSON object's keys are strings"},
		{"NaN", "{'x': 0.0 / 0.0}", nil, "NaN"},
		{"a uint beyond int64", "18446744073709551615u", nil, "larger than a JSON integer"},
	}
	msg := sample()
	msg.Value = map[string]any{"blob": []byte("x"), "price": 2.5}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := celexpr.CompileReduce(tt.expr)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := r.Next(context.Background(), tt.state, msg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("next %q: got %#v, %v; want an error containing %q", tt.expr, got, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.expr) {
				t.Errorf("next %q: got error %q, want it to name the expression", tt.expr, err)
			}
		})
	}
}

func TestReduceCostLimitStopsARunawayExpression(t *testing.T) {
	// Searching a string costs a tenth of a unit per character: 200
	// searches of 100,000 characters cost 2,000,000 units.
	r, err := celexpr.CompileReduce("state.items.map(x, state.text.contains('needle'))")
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	state := func(items int) any {
		return map[string]any{"text": strings.Repeat("hay", 100_000/3), "items": make([]any, items)}
	}
	_, err = r.Next(context.Background(), state(200), sample())
	if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Fatalf("next: got %v, want a cost limit error", err)
	}
	// The same program stays usable for an input within the limit.
	got, err := r.Next(context.Background(), state(50), sample())
	if l, _ := got.([]any); err != nil || len(l) != 50 {
		t.Fatalf("next on 50 items: got %v items, %v; want 50, nil", len(l), err)
	}
}

func TestReduceHonoursACancelledContext(t *testing.T) {
	r, err := celexpr.CompileReduce("state.map(x, x + 1)")
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	big := make([]any, 10_000)
	for i := range big {
		big[i] = int64(i)
	}
	if _, err := r.Next(ctx, big, engine.Message{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("next with a cancelled context: got %v, want context.Canceled", err)
	}
}

func BenchmarkReduce(b *testing.B) {
	r, err := celexpr.CompileReduce("{'total': state.total + event.payload.count, 'lines': state.lines + 1, 'status': event.name}")
	if err != nil {
		b.Fatalf("compile: %v", err)
	}
	msg := sample()
	state := any(map[string]any{"total": int64(0), "lines": int64(0)})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if state, err = r.Next(ctx, state, msg); err != nil {
			b.Fatal(err)
		}
	}
}
