/*
Copyright 2026 The eventsourcing-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1_test

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// projectionEveryField is a Projection with every spec field set.
const projectionEveryField = `
apiVersion: eventsourcing.dev/v1alpha1
kind: Projection
metadata:
  name: items
  namespace: default
spec:
  streams: [items-events]
  pipelineRef: {name: default}
  eventNames: [ItemCreated]
  startFrom: Beginning
  readModel:
    type: Append
    key: items
`

// projection returns a Projection manifest with the given spec lines
// (indented by two spaces).
func projection(spec string) string {
	return "apiVersion: eventsourcing.dev/v1alpha1\nkind: Projection\nmetadata:\n  name: items\n  namespace: default\nspec:\n" + spec
}

func TestProjectionValidation(t *testing.T) {
	const exactlyOne = "set exactly one of key (a fixed key for every event) and keyExpression"
	runAdmitCases(t, loadCRD(t, "projections"), []admitCase{
		{name: "every field set is valid", manifest: projectionEveryField},
		{name: "the example of docs/projections.md is valid", manifest: docExample(t, "projections.md", "Projection")},
		{name: "a key expression instead of a key", manifest: projection(
			"  streams: [items-events]\n  readModel: {type: Latest, keyExpression: event.payload.sku}\n")},
		{name: "several streams, no pipeline", manifest: projection(
			"  streams: [items-events, orders.v1]\n  startFrom: Latest\n  readModel: {type: Count, key: all}\n")},
		{
			name:       "both key and keyExpression",
			manifest:   projection("  streams: [items-events]\n  readModel: {type: Append, key: items, keyExpression: event.name}\n"),
			wantErrors: []wantError{{"spec.readModel", exactlyOne}},
		},
		{
			name:       "neither key nor keyExpression",
			manifest:   projection("  streams: [items-events]\n  readModel: {type: Append}\n"),
			wantErrors: []wantError{{"spec.readModel", exactlyOne}},
		},
		{
			name:       "an empty key",
			manifest:   projection("  streams: [items-events]\n  readModel: {type: Append, key: ''}\n"),
			wantErrors: []wantError{{"spec.readModel.key", "should be at least 1 chars long"}},
		},
		{
			name:       "no read model type",
			manifest:   projection("  streams: [items-events]\n  readModel: {key: items}\n"),
			wantErrors: []wantError{{"spec.readModel.type", "Required value"}},
		},
		{
			name:       "an unknown read model type",
			manifest:   projection("  streams: [items-events]\n  readModel: {type: Sum, key: items}\n"),
			wantErrors: []wantError{{"spec.readModel.type", `Unsupported value: "Sum"`}},
		},
		{
			name:       "no read model",
			manifest:   projection("  streams: [items-events]\n"),
			wantErrors: []wantError{{"spec.readModel", "Required value"}},
		},
		{
			name:       "no streams",
			manifest:   projection("  streams: []\n  readModel: {type: Append, key: items}\n"),
			wantErrors: []wantError{{"spec.streams", "should have at least 1 items"}},
		},
		{
			name:       "streams left out",
			manifest:   projection("  readModel: {type: Append, key: items}\n"),
			wantErrors: []wantError{{"spec.streams", "Required value"}},
		},
		{
			name:       "a stream listed twice",
			manifest:   projection("  streams: [items-events, items-events]\n  readModel: {type: Append, key: items}\n"),
			wantErrors: []wantError{{"spec.streams[1]", `Duplicate value: "items-events"`}},
		},
		{
			name:       "a stream name that is not DNS-1123",
			manifest:   projection("  streams: [Items_Events]\n  readModel: {type: Append, key: items}\n"),
			wantErrors: []wantError{{"spec.streams[0]", "should match"}},
		},
		{
			name:       "a pipelineRef without a name",
			manifest:   projection("  streams: [items-events]\n  pipelineRef: {}\n  readModel: {type: Append, key: items}\n"),
			wantErrors: []wantError{{"spec.pipelineRef.name", "Required value"}},
		},
		{
			name:       "a pipeline name that is not DNS-1123",
			manifest:   projection("  streams: [items-events]\n  pipelineRef: {name: -default}\n  readModel: {type: Append, key: items}\n"),
			wantErrors: []wantError{{"spec.pipelineRef.name", "should match"}},
		},
		{
			name:       "an unknown startFrom",
			manifest:   projection("  streams: [items-events]\n  startFrom: Middle\n  readModel: {type: Append, key: items}\n"),
			wantErrors: []wantError{{"spec.startFrom", `Unsupported value: "Middle"`}},
		},
		{name: "a Reduce read model", manifest: projection("  streams: [orders]\n  readModel:\n    type: Reduce\n" +
			"    keyExpression: event.key\n    reduce:\n      initial: \"{'total': 0}\"\n" +
			"      expression: \"{'total': state.total + event.payload.amount}\"\n")},
		{
			name:       "type Reduce without reduce",
			manifest:   projection("  streams: [orders]\n  readModel: {type: Reduce, keyExpression: event.key}\n"),
			wantErrors: []wantError{{"spec.readModel", "type Reduce needs reduce: set reduce.initial"}},
		},
		{
			name: "reduce with another type",
			manifest: projection("  streams: [orders]\n  readModel:\n    type: Count\n    key: all\n" +
				"    reduce: {initial: '0', expression: state + 1}\n"),
			wantErrors: []wantError{{"spec.readModel", "reduce is only for type Reduce: remove reduce, or set type: Reduce"}},
		},
		{
			name:       "reduce without an expression",
			manifest:   projection("  streams: [orders]\n  readModel: {type: Reduce, key: all, reduce: {initial: '0'}}\n"),
			wantErrors: []wantError{{"spec.readModel.reduce.expression", "Required value"}},
		},
		{
			name:       "reduce with an empty initial state",
			manifest:   projection("  streams: [orders]\n  readModel: {type: Reduce, key: all, reduce: {initial: '', expression: state}}\n"),
			wantErrors: []wantError{{"spec.readModel.reduce.initial", "should be at least 1 chars long"}},
		},
		{
			name:       "an event name listed twice",
			manifest:   projection("  streams: [items-events]\n  eventNames: [A, A]\n  readModel: {type: Append, key: items}\n"),
			wantErrors: []wantError{{"spec.eventNames[1]", "Duplicate value"}},
		},
	})
}

func TestProjectionDefaultsAndDecodes(t *testing.T) {
	obj, errs := loadCRD(t, "projections").admit(t, projection(
		"  streams: [items-events]\n  readModel: {type: Latest, keyExpression: event.payload.sku}\n"))
	if len(errs) != 0 {
		t.Fatalf("got errors, want none:\n%s", errorLines(errs))
	}
	var p v1alpha1.Projection
	decodeStrict(t, obj, &p)
	if p.Spec.StartFrom != v1alpha1.StartFromBeginning {
		t.Errorf("startFrom: got %q, want Beginning", p.Spec.StartFrom)
	}
	if p.Spec.PipelineRef != nil {
		t.Errorf("pipelineRef: got %+v, want none (the default chain)", p.Spec.PipelineRef)
	}
	if want := (v1alpha1.ReadModel{Type: v1alpha1.ReadModelLatest, KeyExpression: "event.payload.sku"}); p.Spec.ReadModel != want {
		t.Errorf("readModel: got %+v, want %+v", p.Spec.ReadModel, want)
	}
}

func TestProjectionWithEveryFieldDecodes(t *testing.T) {
	obj, errs := loadCRD(t, "projections").admit(t, projectionEveryField)
	if len(errs) != 0 {
		t.Fatalf("got errors, want none:\n%s", errorLines(errs))
	}
	var p v1alpha1.Projection
	decodeStrict(t, obj, &p)
	if !slices.Equal(p.Spec.Streams, []string{"items-events"}) || p.Spec.PipelineRef.Name != "default" ||
		!slices.Equal(p.Spec.EventNames, []string{"ItemCreated"}) || p.Spec.ReadModel.Key != "items" {
		t.Errorf("spec: got %+v", p.Spec)
	}
}

func TestProjectionBuiltInGoIsValid(t *testing.T) {
	p := &v1alpha1.Projection{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Projection"},
		ObjectMeta: metav1.ObjectMeta{Name: "items", Namespace: "default"},
		Spec: v1alpha1.ProjectionSpec{
			Streams:   []string{"items-events"},
			ReadModel: v1alpha1.ReadModel{Type: v1alpha1.ReadModelCount, Key: "all"},
		},
		Status: v1alpha1.ProjectionStatus{
			ObservedGeneration: 2,
			Conditions: []metav1.Condition{{
				Type: "Ready", Status: metav1.ConditionFalse, Reason: "StreamNotFound",
				Message: "stream items-events does not exist: create it", LastTransitionTime: metav1.Now(),
			}},
			QueryPath: "/v1/namespaces/default/projections/items",
		},
	}
	if _, errs := loadCRD(t, "projections").admit(t, toManifest(t, p)); len(errs) != 0 {
		t.Fatalf("got errors, want none:\n%s", errorLines(errs))
	}
}
