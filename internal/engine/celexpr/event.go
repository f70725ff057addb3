package celexpr

import (
	"fmt"
	"reflect"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// eventTypeName is the CEL object type of the event variable. Declaring an
// object type (rather than map(string, dyn)) lets the checker reject a
// misspelled field such as event.nmae when the expression is compiled.
const eventTypeName = "eventsourcing.v1alpha1.Event"

var eventType = types.NewObjectType(eventTypeName)

// eventField is one field of the event type: its CEL type and how to read it
// straight from an engine.Message, without reflection.
type eventField struct {
	typ   *types.Type
	isSet func(m *engine.Message) bool
	get   func(a types.Adapter, m *engine.Message) ref.Val
}

// eventFields lists the fields expressions can select. sequence is an int
// rather than a uint so that comparisons with literals (event.sequence > 10)
// type-check without a u suffix.
var eventFields = map[string]eventField{
	"id": {
		typ:   types.StringType,
		isSet: func(m *engine.Message) bool { return m.ID != "" },
		get:   func(_ types.Adapter, m *engine.Message) ref.Val { return types.String(m.ID) },
	},
	"name": {
		typ:   types.StringType,
		isSet: func(m *engine.Message) bool { return m.Name != "" },
		get:   func(_ types.Adapter, m *engine.Message) ref.Val { return types.String(m.Name) },
	},
	"stream": {
		typ:   types.StringType,
		isSet: func(m *engine.Message) bool { return m.Stream != "" },
		get:   func(_ types.Adapter, m *engine.Message) ref.Val { return types.String(m.Stream) },
	},
	"sequence": {
		typ:   types.IntType,
		isSet: func(m *engine.Message) bool { return m.Sequence != 0 },
		get:   func(_ types.Adapter, m *engine.Message) ref.Val { return types.Int(int64(m.Sequence)) },
	},
	// key and version are "" and 0 for an unkeyed event, never unset: an
	// expression such as event.key == "" needs no has() guard.
	"key": {
		typ:   types.StringType,
		isSet: func(*engine.Message) bool { return true },
		get:   func(_ types.Adapter, m *engine.Message) ref.Val { return types.String(m.Key) },
	},
	"version": {
		typ:   types.IntType,
		isSet: func(*engine.Message) bool { return true },
		get:   func(_ types.Adapter, m *engine.Message) ref.Val { return types.Int(int64(m.Version)) },
	},
	"time": {
		typ:   types.TimestampType,
		isSet: func(m *engine.Message) bool { return !m.Time.IsZero() },
		get:   func(_ types.Adapter, m *engine.Message) ref.Val { return types.Timestamp{Time: m.Time} },
	},
	"headers": {
		typ:   types.NewMapType(types.StringType, types.StringType),
		isSet: func(m *engine.Message) bool { return len(m.Headers) != 0 },
		get: func(a types.Adapter, m *engine.Message) ref.Val {
			return types.NewStringStringMap(a, m.Headers)
		},
	},
	"correlationId": {
		typ:   types.StringType,
		isSet: func(m *engine.Message) bool { return m.CorrelationID != "" },
		get:   func(_ types.Adapter, m *engine.Message) ref.Val { return types.String(m.CorrelationID) },
	},
	"payload": {
		typ:   types.DynType,
		isSet: func(m *engine.Message) bool { return m.Value != nil },
		// The adapter wraps maps and lists lazily: only the keys an
		// expression touches are converted.
		get: func(a types.Adapter, m *engine.Message) ref.Val { return a.NativeToValue(m.Value) },
	},
}

// eventProvider adds the event object type to CEL's standard registry.
type eventProvider struct {
	*types.Registry
}

// FindStructType reports the event type; other names go to the registry.
func (p *eventProvider) FindStructType(name string) (*types.Type, bool) {
	if name == eventTypeName {
		return types.NewTypeTypeWithParam(eventType), true
	}
	return p.Registry.FindStructType(name)
}

// FindStructFieldNames lists the event type's fields.
func (p *eventProvider) FindStructFieldNames(name string) ([]string, bool) {
	if name != eventTypeName {
		return p.Registry.FindStructFieldNames(name)
	}
	names := make([]string, 0, len(eventFields))
	for n := range eventFields {
		names = append(names, n)
	}
	return names, true
}

// FindStructFieldType describes one event field. The checker uses it to
// type-check selections, and the interpreter uses IsSet and GetFrom to read
// the field from the *engine.Message behind the event variable.
func (p *eventProvider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if name != eventTypeName {
		return p.Registry.FindStructFieldType(name, field)
	}
	f, ok := eventFields[field]
	if !ok {
		return nil, false
	}
	return &types.FieldType{
		Type: f.typ,
		IsSet: func(obj any) bool {
			m, ok := obj.(*engine.Message)
			return ok && f.isSet(m)
		},
		GetFrom: func(obj any) (any, error) {
			m, ok := obj.(*engine.Message)
			if !ok {
				return nil, fmt.Errorf("field %s: got %T, want an event", field, obj)
			}
			return f.get(p.Registry, m), nil
		},
	}, true
}

// NewValue refuses to build events: expressions read the event, they do not
// construct one.
func (p *eventProvider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if name == eventTypeName {
		return types.NewErr("cannot construct %s", eventTypeName)
	}
	return p.Registry.NewValue(name, fields)
}

// eventValue is the CEL value of the event variable. Its Value is the
// *engine.Message the field getters read.
type eventValue struct {
	msg engine.Message
}

// ConvertToNative gives the message itself.
func (v *eventValue) ConvertToNative(typeDesc reflect.Type) (any, error) {
	switch typeDesc {
	case reflect.TypeFor[*engine.Message]():
		return &v.msg, nil
	case reflect.TypeFor[engine.Message]():
		return v.msg, nil
	}
	return nil, fmt.Errorf("type conversion error from %s to %v", eventTypeName, typeDesc)
}

// ConvertToType supports only type(event).
func (v *eventValue) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return eventType
	}
	return types.NewErr("type conversion error from %s to %s", eventTypeName, t.TypeName())
}

// Equal compares events by stream and id, the event store's identity.
func (v *eventValue) Equal(other ref.Val) ref.Val {
	o, ok := other.(*eventValue)
	return types.Bool(ok && o.msg.Stream == v.msg.Stream && o.msg.ID == v.msg.ID)
}

// Type is the event object type.
func (v *eventValue) Type() ref.Type { return eventType }

// Value is the message behind the variable.
func (v *eventValue) Value() any { return &v.msg }

// activation binds the one variable, event, without building a map per
// evaluation.
type activation struct {
	event eventValue
}

// ResolveName resolves "event".
func (a *activation) ResolveName(name string) (any, bool) {
	if name == "event" {
		return &a.event, true
	}
	return nil, false
}

// Parent is nil: there is no enclosing scope.
func (a *activation) Parent() interpreter.Activation { return nil }
