// Package celexpr compiles and evaluates the CEL expressions users write in
// Pipelines (Filter) and Projections (keyExpression, and the Reduce read
// model: see Reducer).
//
// Expressions see the variable event, of a declared object type, so a
// misspelled field (event.nmae) is a compile error. Its fields:
//
//	id             string
//	name           string
//	stream         string
//	sequence       int (the 1-based position in the stream; int, not uint,
//	               so event.sequence > 10 needs no u suffix)
//	time           timestamp (google.protobuf.Timestamp)
//	headers        map(string, string)
//	correlationId  string
//	payload        dyn: the decoded JSON-compatible value (engine.Message.Value)
//
// Because payload is dyn, its keys and types are checked only at run time: a
// missing key (event.payload.nope) is an evaluation error, which the engine
// dead-letters. Use has(event.payload.sku) or the optional syntax
// (event.payload.?sku.orValue("none")) for keys that may be absent. The CEL
// string extensions (lowerAscii, split, ...) are available.
package celexpr

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// CostLimit bounds the work one evaluation may do, in CEL cost units (about
// one per operation). An expression that goes past it, such as a nested
// comprehension over a large payload list, stops with an error instead of
// holding up the route.
const CostLimit = 100_000

// interruptCheckFrequency is how many comprehension iterations run between
// checks of the context, so a cancelled evaluation stops promptly.
const interruptCheckFrequency = 100

// Program is a compiled expression. It is safe for concurrent use.
type Program struct {
	expr string
	prg  cel.Program
}

// env is the one CEL environment every expression is compiled in. A
// cel.Env is safe for concurrent Compile and Program calls.
var env = sync.OnceValues(func() (*cel.Env, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	return cel.NewEnv(
		cel.CustomTypeAdapter(reg),
		cel.CustomTypeProvider(&eventProvider{Registry: reg}),
		cel.Variable("event", eventType),
		cel.OptionalTypes(),
		ext.Strings(),
	)
})

// CompileFilter compiles a Filter expression. Its type must be bool (or dyn,
// such as event.payload.active, which is checked when evaluated). The error
// of an invalid expression is CEL's message, with line and column, fit to
// show to the user as it is.
func CompileFilter(expr string) (*Program, error) {
	return compile(expr, "filter", "bool", types.BoolType, types.DynType)
}

// CompileKey compiles a projection's keyExpression. Its type must be string,
// int or uint (or dyn, such as event.payload.sku, which is checked when
// evaluated).
func CompileKey(expr string) (*Program, error) {
	return compile(expr, "key expression", "string, int or uint", types.StringType, types.IntType, types.UintType, types.DynType)
}

func compile(expr, kind, want string, allowed ...*types.Type) (*Program, error) {
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("build cel environment: %w", err)
	}
	ast, iss := e.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if !hasType(ast.OutputType(), allowed) {
		return nil, fmt.Errorf("%s gives %s, want %s", kind, ast.OutputType(), want)
	}
	prg, err := e.Program(ast,
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(interruptCheckFrequency),
	)
	if err != nil {
		return nil, fmt.Errorf("plan expression: %w", err)
	}
	return &Program{expr: expr, prg: prg}, nil
}

func hasType(t *types.Type, allowed []*types.Type) bool {
	for _, a := range allowed {
		if t.IsExactType(a) {
			return true
		}
	}
	return false
}

// String returns the expression as written.
func (p *Program) String() string { return p.expr }

// Match evaluates a filter against msg. An evaluation error (a missing
// payload key, a type mismatch, the cost limit, a cancelled ctx) is
// returned; errors.Is(err, context.Canceled) tells cancellation apart.
func (p *Program) Match(ctx context.Context, msg engine.Message) (bool, error) {
	v, err := p.eval(ctx, msg)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("evaluate %q: got %s, want bool", p.expr, v.Type().TypeName())
	}
	return bool(b), nil
}

// Key evaluates a key expression against msg. Ints and uints are formatted
// in decimal. A double with a whole value (an Avro double, or arithmetic on
// one) is accepted and formatted as an integer, so 7.0 gives the key "7" as
// the JSON number 7 does.
func (p *Program) Key(ctx context.Context, msg engine.Message) (string, error) {
	v, err := p.eval(ctx, msg)
	if err != nil {
		return "", err
	}
	switch k := v.(type) {
	case types.String:
		return string(k), nil
	case types.Int:
		return strconv.FormatInt(int64(k), 10), nil
	case types.Uint:
		return strconv.FormatUint(uint64(k), 10), nil
	case types.Double:
		f := float64(k)
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return strconv.FormatInt(int64(f), 10), nil
		}
	}
	return "", fmt.Errorf("evaluate %q: got %s, want string, int or uint", p.expr, v.Type().TypeName())
}

func (p *Program) eval(ctx context.Context, msg engine.Message) (ref.Val, error) {
	act := &activation{event: eventValue{msg: msg}}
	v, _, err := p.prg.ContextEval(ctx, act)
	if err != nil {
		return nil, fmt.Errorf("evaluate %q: %w", p.expr, err)
	}
	if v == nil {
		return nil, errors.New("evaluate: no result")
	}
	return v, nil
}
