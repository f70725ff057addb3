package projection_test

import (
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

func TestNewRejectsInvalidSpecs(t *testing.T) {
	valid := spec(projection.Append, "items", "")
	tests := []struct {
		name   string
		change func(s *projection.Spec)
		want   []string
	}{
		{"no name", func(s *projection.Spec) { s.Name = "" }, []string{"name: must be set"}},
		{"no streams", func(s *projection.Spec) { s.Streams = nil }, []string{"streams: name at least one stream"}},
		{"empty stream name", func(s *projection.Spec) { s.Streams = []string{"items", ""} }, []string{"a stream name is empty"}},
		{"unknown type", func(s *projection.Spec) { s.Type = "Sum" }, []string{`"Sum" is not one of Append, Latest, Count, Reduce`}},
		{"unknown startFrom", func(s *projection.Spec) { s.StartFrom = "Middle" }, []string{`"Middle" is not one of Beginning, Latest`}},
		{"neither key", func(s *projection.Spec) { s.Key = "" }, []string{"set key or keyExpression"}},
		{"both keys", func(s *projection.Spec) { s.KeyExpression = "event.name" }, []string{"only one of key and keyExpression"}},
		{"every problem at once", func(s *projection.Spec) { s.Streams = nil; s.Type = ""; s.Key = "" },
			[]string{"streams:", "readModel.type:", "set key or keyExpression"}},
		{"key expression that does not compile", func(s *projection.Spec) { s.Key = ""; s.KeyExpression = "event.skus" },
			[]string{`keyExpression "event.skus"`, "undefined field 'skus'", "<input>:1:6"}},
		{"key expression of the wrong type", func(s *projection.Spec) { s.Key = ""; s.KeyExpression = "event.sequence > 1" },
			[]string{`keyExpression "event.sequence > 1"`, "gives bool"}},
		{"reduce without expressions", func(s *projection.Spec) { s.Type = projection.Reduce },
			[]string{"readModel.reduce.initial: set the state", "readModel.reduce.expression: set the next state"}},
		{"reduce expressions with another type", func(s *projection.Spec) { s.Reducer = reducer("0", "state + 1") },
			[]string{"readModel.reduce: only type Reduce folds with expressions, not Append"}},
		{"initial that does not compile", reduceWith("{'n': event.id}", "state"),
			[]string{`readModel.reduce.initial "{'n': event.id}"`, "undeclared reference to 'event'"}},
		{"expression that does not compile", reduceWith("0", "state + event.nmae"),
			[]string{`readModel.reduce.expression "state + event.nmae"`, "undefined field 'nmae'", "<input>:1:14"}},
		{"expression that gives no JSON value", reduceWith("0", "event.time"),
			[]string{`readModel.reduce.expression "event.time"`, "gives google.protobuf.Timestamp, want a JSON value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid
			s.Streams = []string{"items"}
			tt.change(&s)
			p, err := projection.New(s, readmodel.NewMemory())
			if err == nil {
				t.Fatalf("new %+v: got %v, want an error", s, p)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("new: got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func reducer(initial, expression string) projection.Reducer {
	return projection.Reducer{Initial: initial, Expression: expression}
}

// reduceWith makes a spec a Reduce with these expressions.
func reduceWith(initial, expression string) func(s *projection.Spec) {
	return func(s *projection.Spec) {
		s.Type = projection.Reduce
		s.Reducer = reducer(initial, expression)
	}
}

func TestValidateAcceptsEveryTypeAndStart(t *testing.T) {
	for _, typ := range []projection.ReadModelType{projection.Append, projection.Latest, projection.Count, projection.Reduce} {
		for _, from := range []projection.StartFrom{"", projection.Beginning, projection.Latest} {
			s := spec(typ, "", "event.payload.sku")
			if typ == projection.Reduce {
				s.Reducer = reducer("0", "state + 1")
			}
			s.StartFrom = from
			if err := s.Validate(); err != nil {
				t.Errorf("validate type %q startFrom %q: got %v, want nil", typ, from, err)
			}
		}
	}
}
