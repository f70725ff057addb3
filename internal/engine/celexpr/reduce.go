package celexpr

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// ReduceCostLimit bounds one evaluation of a Reduce expression (and of its
// initial state), in CEL cost units: the budget Kubernetes gives one
// validation rule. It is higher than CostLimit because a reduce expression
// rebuilds the whole state of a key on every event.
const ReduceCostLimit = 1_000_000

// wantJSON says what a Reduce expression must give, in the words of errors.
const wantJSON = "want a JSON value: a map with string keys, a list, a string, a number, a bool or null"

// initialEnv compiles the initial state, which sees no variables.
var initialEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(cel.OptionalTypes(), ext.Strings())
})

// reduceEnv compiles reduce expressions: the event of every expression,
// and state, the key's current state, as dyn since it is whatever the
// previous evaluation gave.
var reduceEnv = sync.OnceValues(func() (*cel.Env, error) {
	e, err := env()
	if err != nil {
		return nil, err
	}
	return e.Extend(cel.Variable("state", cel.DynType))
})

// Reducer is a compiled Reduce expression. It is safe for concurrent use.
type Reducer struct {
	expr string
	prg  cel.Program
}

// EvalInitial compiles and evaluates a Reduce's initial state, an
// expression without variables such as {'total': 0}, and returns it as a
// JSON-compatible value (see Reducer.Next). The value is shared: callers
// must not change it.
func EvalInitial(expr string) (any, error) {
	e, err := initialEnv()
	if err != nil {
		return nil, fmt.Errorf("build cel environment: %w", err)
	}
	prg, err := compileJSON(e, expr)
	if err != nil {
		return nil, err
	}
	v, _, err := prg.Eval(interpreter.EmptyActivation())
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	return jsonValue(v)
}

// CompileReduce compiles a Reduce expression, which sees state and event
// and gives the next state. Its type must be able to hold a JSON value:
// one that cannot, such as a timestamp, bytes or a map with int keys, is a
// compile error, as is any CEL error, with line and column.
func CompileReduce(expr string) (*Reducer, error) {
	e, err := reduceEnv()
	if err != nil {
		return nil, fmt.Errorf("build cel environment: %w", err)
	}
	prg, err := compileJSON(e, expr)
	if err != nil {
		return nil, err
	}
	return &Reducer{expr: expr, prg: prg}, nil
}

func compileJSON(e *cel.Env, expr string) (cel.Program, error) {
	ast, iss := e.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if !canBeJSON(ast.OutputType()) {
		return nil, fmt.Errorf("gives %s, %s", ast.OutputType(), wantJSON)
	}
	prg, err := e.Program(ast,
		cel.CostLimit(ReduceCostLimit),
		cel.InterruptCheckFrequency(interruptCheckFrequency),
	)
	if err != nil {
		return nil, fmt.Errorf("plan expression: %w", err)
	}
	return prg, nil
}

// canBeJSON reports whether a value of type t may be a JSON value: dyn
// (checked when evaluated) or a type whose every value is one.
func canBeJSON(t *types.Type) bool {
	switch t.Kind() {
	case types.DynKind, types.AnyKind, types.TypeParamKind,
		types.NullTypeKind, types.BoolKind, types.IntKind, types.UintKind, types.DoubleKind, types.StringKind:
		return true
	case types.ListKind:
		return canBeJSON(t.Parameters()[0])
	case types.MapKind:
		k := t.Parameters()[0].Kind()
		return (k == types.StringKind || k == types.DynKind || k == types.TypeParamKind) && canBeJSON(t.Parameters()[1])
	default:
		return false
	}
}

// String returns the expression as written.
func (r *Reducer) String() string { return r.expr }

// Next evaluates the expression with state, a JSON-compatible value, and
// msg, and returns the next state as a JSON-compatible value:
// map[string]any, []any, string, int64, float64, bool or nil. A double
// with a whole value (within ±2^53) becomes an int64, as a JSON decoder in
// the engine reads the number it encodes to. An evaluation error, going
// over ReduceCostLimit and a result that is no JSON value (a timestamp,
// bytes, a map with int keys, a NaN) are errors; errors.Is(err,
// context.Canceled) tells cancellation apart.
func (r *Reducer) Next(ctx context.Context, state any, msg engine.Message) (any, error) {
	act := &reduceActivation{state: state, event: eventValue{msg: msg}}
	v, _, err := r.prg.ContextEval(ctx, act)
	if err != nil {
		return nil, fmt.Errorf("evaluate %q: %w", r.expr, err)
	}
	out, err := jsonValue(v)
	if err != nil {
		return nil, fmt.Errorf("evaluate %q: %w", r.expr, err)
	}
	return out, nil
}

// reduceActivation binds state and event without building a map per
// evaluation. state is a Go value, which CEL wraps as it reads it.
type reduceActivation struct {
	state any
	event eventValue
}

// ResolveName resolves "state" and "event".
func (a *reduceActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "state":
		return a.state, true
	case "event":
		return &a.event, true
	}
	return nil, false
}

// Parent is nil: there is no enclosing scope.
func (a *reduceActivation) Parent() interpreter.Activation { return nil }

// jsonValue converts a CEL result into Go's JSON-compatible values.
func jsonValue(v ref.Val) (any, error) {
	switch t := v.(type) {
	case *types.Err:
		return nil, t
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(t), nil
	case types.String:
		return string(t), nil
	case types.Int:
		return int64(t), nil
	case types.Uint:
		if uint64(t) > math.MaxInt64 {
			return nil, fmt.Errorf("result holds %du, larger than a JSON integer in the engine (an int64) holds", uint64(t))
		}
		return int64(t), nil
	case types.Double:
		f := float64(t)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("result holds %v, which JSON cannot hold", f)
		}
		if i := int64(f); float64(i) == f && math.Abs(f) < 1<<53 {
			return i, nil
		}
		return f, nil
	case traits.Mapper:
		return jsonObject(t)
	case traits.Lister:
		return jsonArray(t)
	}
	return nil, fmt.Errorf("result holds a %s, %s", v.Type().TypeName(), wantJSON)
}

// jsonObject converts a map. The maps CEL builds from literals and the Go
// maps it wraps (state, payloads) are read directly; others through CEL's
// iterator, which goes through reflection.
func jsonObject(m traits.Mapper) (any, error) {
	switch native := m.Value().(type) {
	case map[ref.Val]ref.Val:
		out := make(map[string]any, len(native))
		for k, v := range native {
			if err := putJSON(out, k, v); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		return nativeJSON(native)
	}
	n, ok := m.Size().(types.Int)
	if !ok {
		return nil, fmt.Errorf("result holds a map of unknown size, %s", wantJSON)
	}
	out := make(map[string]any, int(n))
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		if err := putJSON(out, k, m.Get(k)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// putJSON converts one entry of a map into out.
func putJSON(out map[string]any, k, v ref.Val) error {
	ks, ok := k.(types.String)
	if !ok {
		return fmt.Errorf("result holds a map with the %s key %v: a JSON object's keys are strings", k.Type().TypeName(), k)
	}
	jv, err := jsonValue(v)
	if err != nil {
		return fmt.Errorf("%w (under key %q)", err, string(ks))
	}
	out[string(ks)] = jv
	return nil
}

func jsonArray(l traits.Lister) (any, error) {
	switch native := l.Value().(type) {
	case []ref.Val:
		out := make([]any, len(native))
		for i, v := range native {
			jv, err := jsonValue(v)
			if err != nil {
				return nil, fmt.Errorf("%w (at index %d)", err, i)
			}
			out[i] = jv
		}
		return out, nil
	case []any:
		return nativeJSON(native)
	}
	n, ok := l.Size().(types.Int)
	if !ok {
		return nil, fmt.Errorf("result holds a list of unknown size, %s", wantJSON)
	}
	out := make([]any, int(n))
	for i := range out {
		v, err := jsonValue(l.Get(types.Int(i)))
		if err != nil {
			return nil, fmt.Errorf("%w (at index %d)", err, i)
		}
		out[i] = v
	}
	return out, nil
}

// nativeJSON copies a Go value that CEL passed through unchanged (a state
// or a payload, or part of one) with the rules of jsonValue. Anything but
// the types decoders give is converted by CEL, which says what it is.
func nativeJSON(v any) (any, error) {
	switch t := v.(type) {
	case nil, bool, string, int64:
		return t, nil
	case float64:
		return jsonValue(types.Double(t))
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			je, err := nativeJSON(e)
			if err != nil {
				return nil, fmt.Errorf("%w (under key %q)", err, k)
			}
			out[k] = je
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			je, err := nativeJSON(e)
			if err != nil {
				return nil, fmt.Errorf("%w (at index %d)", err, i)
			}
			out[i] = je
		}
		return out, nil
	}
	return jsonValue(types.DefaultTypeAdapter.NativeToValue(v))
}
