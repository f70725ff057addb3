package celexpr_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/celexpr"
)

// sample is an event with every field set.
func sample() engine.Message {
	return engine.Message{
		ID:            "evt-1",
		Name:          "ItemCreated",
		Stream:        "items",
		Sequence:      42,
		Key:           "order-7",
		Version:       5,
		Time:          time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Headers:       map[string]string{"ce-source": "shop", "tenant": "acme"},
		CorrelationID: "corr-9",
		ContentType:   "application/json",
		Payload:       []byte(`{"sku":"A-1","n":7,"price":2.5,"tags":["new"],"nested":{"ok":true},"count":3}`),
		Value: map[string]any{
			"sku":    "A-1",
			"n":      float64(7),
			"price":  2.5,
			"tags":   []any{"new"},
			"nested": map[string]any{"ok": true},
			"count":  int64(3), // as Avro decodes an int
		},
	}
}

func TestCompileRejectsInvalidExpressions(t *testing.T) {
	tests := []struct {
		name    string
		compile func(string) (*celexpr.Program, error)
		expr    string
		want    []string // substrings of the error
	}{
		{"syntax error names the column", celexpr.CompileFilter, "event.name ==", []string{"Syntax error", "<input>:1:14"}},
		{"unknown field", celexpr.CompileFilter, "event.nmae == 'x'", []string{"undefined field 'nmae'", "<input>:1:6"}},
		{"unknown field in key", celexpr.CompileKey, "event.corelationId", []string{"undefined field 'corelationId'"}},
		{"unknown variable", celexpr.CompileKey, "evnt.name", []string{"undeclared reference to 'evnt'"}},
		{"filter of string type", celexpr.CompileFilter, "event.name", []string{"filter gives string, want bool"}},
		{"filter of int type", celexpr.CompileFilter, "event.sequence + 1", []string{"filter gives int, want bool"}},
		{"key of bool type", celexpr.CompileKey, "event.name == 'x'", []string{"key expression gives bool"}},
		{"key of timestamp type", celexpr.CompileKey, "event.time", []string{"key expression gives google.protobuf.Timestamp"}},
		{"key of map type", celexpr.CompileKey, "event.headers", []string{"key expression gives map(string, string)"}},
		{"wrong operand type", celexpr.CompileFilter, "event.sequence == 'x'", []string{"no matching overload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.compile(tt.expr)
			if err == nil {
				t.Fatalf("compile %q: got program %v, want an error containing %q", tt.expr, p, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("compile %q: got error %q, want it to contain %q", tt.expr, err, w)
				}
			}
		})
	}
}

func TestMatchSeesEveryField(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		{"event.id == 'evt-1'", true},
		{"event.name == 'ItemCreated'", true},
		{"event.name == 'ItemDeleted'", false},
		{"event.stream == 'items'", true},
		{"event.sequence == 42", true},
		{"event.sequence > 42", false},
		{"event.key == 'order-7'", true},
		{"event.version == 5", true},
		{"event.version > 5", false},
		{"event.time == timestamp('2026-01-02T03:04:05Z')", true},
		{"event.time.getFullYear() == 2026", true},
		{"event.headers['tenant'] == 'acme'", true},
		{"'ce-source' in event.headers", true},
		{"'missing' in event.headers", false},
		{"event.correlationId == 'corr-9'", true},
		{"event.payload.sku == 'A-1'", true},
		{"event.payload.n == 7", true},
		{"event.payload.price > 2.0", true},
		{"event.payload.count == 3", true},
		{"'new' in event.payload.tags", true},
		{"event.payload.nested.ok", true},
		{"has(event.payload.sku)", true},
		{"has(event.payload.nope)", false},
		{"has(event.payload)", true},
		{"event.payload.?nope.orValue('none') == 'none'", true},
		{"event.name.lowerAscii().startsWith('item')", true},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			p, err := celexpr.CompileFilter(tt.expr)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := p.Match(context.Background(), sample())
			if err != nil {
				t.Fatalf("match: %v", err)
			}
			if got != tt.want {
				t.Errorf("match %q: got %v, want %v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestPresenceTestsOnAnEmptyEvent(t *testing.T) {
	p, err := celexpr.CompileFilter("has(event.payload) || has(event.headers) || has(event.time) || has(event.id)")
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	got, err := p.Match(context.Background(), engine.Message{})
	if err != nil {
		t.Fatalf("match: %v", err)
	}
	if got {
		t.Errorf("match on an empty event: got true, want false")
	}
}

func TestAnUnkeyedEventHasAnEmptyKeyAndVersionZero(t *testing.T) {
	p, err := celexpr.CompileFilter("event.key == '' && event.version == 0 && has(event.key)")
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if got, err := p.Match(context.Background(), engine.Message{ID: "x"}); err != nil || !got {
		t.Fatalf("match on an unkeyed event: got %v, %v; want true", got, err)
	}
}

func TestKeyFormatsEveryResultType(t *testing.T) {
	tests := []struct {
		expr string
		want string
	}{
		{"event.id", "evt-1"},
		{"event.name", "ItemCreated"},
		{"event.stream", "items"},
		{"event.correlationId", "corr-9"},
		{"event.headers.tenant", "acme"},
		{"event.sequence", "42"},
		{"event.key", "order-7"},
		{"event.key + '#' + string(event.version)", "order-7#5"},
		{"uint(event.sequence)", "42"},
		{"-event.sequence", "-42"},
		{"string(event.time)", "2026-01-02T03:04:05Z"},
		{"event.payload.sku", "A-1"},
		{"event.payload.count", "3"},
		{"event.payload.n", "7"}, // a JSON number is a double; a whole one is a fine key
		{"event.payload.sku + '/' + event.name", "A-1/ItemCreated"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			p, err := celexpr.CompileKey(tt.expr)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := p.Key(context.Background(), sample())
			if err != nil {
				t.Fatalf("key: %v", err)
			}
			if got != tt.want {
				t.Errorf("key %q: got %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

func TestEvaluationErrorsAreReturned(t *testing.T) {
	tests := []struct {
		name   string
		filter bool // compile with CompileFilter and call Match, else CompileKey and Key
		expr   string
		msg    engine.Message
		want   string
	}{
		{"missing payload key in a key", false, "event.payload.nope", sample(), "no such key: nope"},
		{"missing payload key in a filter", true, "event.payload.nope == 'x'", sample(), "no such key: nope"},
		{"missing header", false, "event.headers['nope']", sample(), "no such key: nope"},
		{"payload not decoded", false, "event.payload.sku", engine.Message{Payload: []byte("{}")}, "evaluate"},
		{"key of fractional double", false, "event.payload.price", sample(), "got double, want string, int or uint"},
		{"key of list", false, "event.payload.tags", sample(), "want string, int or uint"},
		{"key of bool", false, "event.payload.nested.ok", sample(), "got bool"},
		{"filter of dyn string", true, "event.payload.sku", sample(), "got string, want bool"},
		{"event cannot be constructed", false, "eventsourcing.v1alpha1.Event{}.name", sample(), "cannot construct"},
		{"run-time type mismatch", true, "event.payload.sku > 3", sample(), "no such overload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			compile, eval := celexpr.CompileKey, key
			if tt.filter {
				compile, eval = celexpr.CompileFilter, match
			}
			p, err := compile(tt.expr)
			if err != nil {
				t.Fatalf("compile %q: %v", tt.expr, err)
			}
			err = eval(p, tt.msg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("evaluate %q: got error %v, want one containing %q", tt.expr, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.expr) {
				t.Errorf("evaluate %q: got error %q, want it to name the expression", tt.expr, err)
			}
		})
	}
}

func key(p *celexpr.Program, msg engine.Message) error {
	_, err := p.Key(context.Background(), msg)
	return err
}

func match(p *celexpr.Program, msg engine.Message) error {
	_, err := p.Match(context.Background(), msg)
	return err
}

// bigList returns an event whose payload holds a list of n numbers.
func bigList(n int) engine.Message {
	items := make([]any, n)
	for i := range items {
		items[i] = float64(i)
	}
	return engine.Message{Value: map[string]any{"items": items}}
}

func TestCancelledContextStopsEvaluation(t *testing.T) {
	p, err := celexpr.CompileFilter("event.payload.items.all(x, x >= 0)")
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.Match(ctx, bigList(10_000))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("match with a cancelled context: got %v, want context.Canceled", err)
	}
}

func TestCostLimitStopsRunawayExpression(t *testing.T) {
	p, err := celexpr.CompileFilter(
		"event.payload.items.all(x, event.payload.items.all(y, x + y >= 0))")
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	// 400 x 400 iterations cost more than the limit.
	_, err = p.Match(context.Background(), bigList(400))
	if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Fatalf("match: got %v, want a cost limit error", err)
	}
	// The same program stays usable for a cheap input.
	ok, err := p.Match(context.Background(), bigList(10))
	if err != nil || !ok {
		t.Fatalf("match on a small list: got %v, %v, want true, nil", ok, err)
	}
}

func TestProgramIsSafeForConcurrentUse(t *testing.T) {
	p, err := celexpr.CompileKey("event.payload.sku + '-' + string(event.sequence)")
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				msg := engine.Message{Sequence: uint64(i + 1), Value: map[string]any{"sku": fmt.Sprint(g)}}
				got, err := p.Key(context.Background(), msg)
				want := fmt.Sprintf("%d-%d", g, i+1)
				if err != nil || got != want {
					errs <- fmt.Errorf("key: got %q, %v, want %q", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStringReturnsTheExpression(t *testing.T) {
	const expr = "event.payload.sku"
	p, err := celexpr.CompileKey(expr)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if got := p.String(); got != expr {
		t.Errorf("String: got %q, want %q", got, expr)
	}
}

func BenchmarkKeyExpression(b *testing.B) {
	p, err := celexpr.CompileKey("event.payload.sku")
	if err != nil {
		b.Fatalf("compile: %v", err)
	}
	msg := sample()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Key(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}
