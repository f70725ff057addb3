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
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// pipelineEveryField is a Pipeline with an entry of every middleware type and every
// setting.
const pipelineEveryField = `
apiVersion: eventsourcing.dev/v1alpha1
kind: Pipeline
metadata:
  name: default
  namespace: default
spec:
  middleware:
    - type: Deserialize
    - type: Logging
      logging: {level: debug}
    - type: Retry
      retry: {maxAttempts: 5, initialBackoff: 100ms, maxBackoff: 10s, multiplier: 2}
    - type: Metrics
    - type: Dedupe
      dedupe: {window: 10m}
    - type: Timeout
      timeout: {after: 5s}
    - type: Filter
      filter: {expression: "event.name == 'ItemCreated'"}
`

// pipeline returns a Pipeline manifest whose middleware list is the given
// flow-style YAML entries.
func pipeline(entries ...string) string {
	m := "apiVersion: eventsourcing.dev/v1alpha1\nkind: Pipeline\nmetadata:\n  name: p\n  namespace: default\nspec:\n  middleware:"
	if len(entries) == 0 {
		return m + " []\n"
	}
	for _, e := range entries {
		m += "\n    - " + e
	}
	return m + "\n"
}

func TestPipelineValidation(t *testing.T) {
	const positive = "must be a positive duration"
	onlyWith := func(settings, typ string) string {
		return settings + " settings apply only to type " + typ
	}
	runAdmitCases(t, loadCRD(t, "pipelines"), []admitCase{
		{name: "every field set is valid", manifest: pipelineEveryField},
		{name: "the example of docs/pipelines.md is valid", manifest: docExample(t, "pipelines.md", "Pipeline")},
		{name: "types without settings", manifest: pipeline(
			"{type: Deserialize}", "{type: Logging}", "{type: Retry}", "{type: Metrics}", "{type: Dedupe}")},
		{name: "empty settings take the defaults", manifest: pipeline(
			"{type: Logging, logging: {}}", "{type: Retry, retry: {}}", "{type: Dedupe, dedupe: {}}")},
		{name: "compound and fractional durations", manifest: pipeline(
			"{type: Retry, retry: {initialBackoff: 1.5s, maxBackoff: 1m30s}}", "{type: Timeout, timeout: {after: 250ms}}")},
		{name: "a type listed twice", manifest: pipeline(
			"{type: Filter, filter: {expression: 'true'}}", "{type: Filter, filter: {expression: 'false'}}")},
		{name: "equal backoffs", manifest: pipeline("{type: Retry, retry: {initialBackoff: 1s, maxBackoff: 1s, multiplier: 1}}")},
		{
			name:       "no entries",
			manifest:   pipeline(),
			wantErrors: []wantError{{"spec.middleware", "should have at least 1 items"}},
		},
		{
			name:       "no spec",
			manifest:   "apiVersion: eventsourcing.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p, namespace: default}\n",
			wantErrors: []wantError{{"spec", "Required value"}},
		},
		{
			name:       "an unknown type",
			manifest:   pipeline("{type: Compress}"),
			wantErrors: []wantError{{"spec.middleware[0].type", `Unsupported value: "Compress"`}},
		},
		{
			name:       "an entry without a type",
			manifest:   pipeline("{logging: {level: info}}"),
			wantErrors: []wantError{{"spec.middleware[0].type", "Required value"}},
		},
		{
			name:       "retry settings on a Logging entry",
			manifest:   pipeline("{type: Logging, retry: {maxAttempts: 3}}"),
			wantErrors: []wantError{{"spec.middleware[0].retry", "Forbidden: " + onlyWith("retry", "Retry")}},
		},
		{
			name:       "logging settings on a Retry entry",
			manifest:   pipeline("{type: Deserialize}", "{type: Retry, logging: {level: info}}"),
			wantErrors: []wantError{{"spec.middleware[1].logging", "Forbidden: " + onlyWith("logging", "Logging")}},
		},
		{
			name:       "dedupe settings on a Metrics entry",
			manifest:   pipeline("{type: Metrics, dedupe: {window: 1m}}"),
			wantErrors: []wantError{{"spec.middleware[0].dedupe", onlyWith("dedupe", "Dedupe")}},
		},
		{
			name:       "timeout settings on a Retry entry",
			manifest:   pipeline("{type: Retry, timeout: {after: 5s}}"),
			wantErrors: []wantError{{"spec.middleware[0].timeout", onlyWith("timeout", "Timeout")}},
		},
		{
			name:       "filter settings on a Deserialize entry",
			manifest:   pipeline("{type: Deserialize, filter: {expression: 'true'}}"),
			wantErrors: []wantError{{"spec.middleware[0].filter", onlyWith("filter", "Filter")}},
		},
		{
			name:       "Filter without filter",
			manifest:   pipeline("{type: Filter}"),
			wantErrors: []wantError{{"spec.middleware[0].filter", "Required value: type Filter needs filter.expression"}},
		},
		{
			name:       "Filter without an expression",
			manifest:   pipeline("{type: Filter, filter: {}}"),
			wantErrors: []wantError{{"spec.middleware[0].filter.expression", "Required value"}},
		},
		{
			name:       "Filter with an empty expression",
			manifest:   pipeline("{type: Filter, filter: {expression: ''}}"),
			wantErrors: []wantError{{"spec.middleware[0].filter.expression", "should be at least 1 chars long"}},
		},
		{
			name:       "Timeout without timeout",
			manifest:   pipeline("{type: Timeout}"),
			wantErrors: []wantError{{"spec.middleware[0].timeout", "Required value: type Timeout needs timeout.after"}},
		},
		{
			name:       "Timeout without after",
			manifest:   pipeline("{type: Timeout, timeout: {}}"),
			wantErrors: []wantError{{"spec.middleware[0].timeout.after", "Required value"}},
		},
		{
			name:       "a duration without a unit",
			manifest:   pipeline("{type: Timeout, timeout: {after: '5'}}"),
			wantErrors: []wantError{{"spec.middleware[0].timeout.after", positive}},
		},
		{
			name:       "a zero duration",
			manifest:   pipeline("{type: Timeout, timeout: {after: 0s}}"),
			wantErrors: []wantError{{"spec.middleware[0].timeout.after", positive}},
		},
		{
			name:       "a negative duration",
			manifest:   pipeline("{type: Retry, retry: {initialBackoff: -1s}}"),
			wantErrors: []wantError{{"spec.middleware[0].retry.initialBackoff", positive}},
		},
		{
			name:       "a duration in words",
			manifest:   pipeline("{type: Dedupe, dedupe: {window: 10 minutes}}"),
			wantErrors: []wantError{{"spec.middleware[0].dedupe.window", positive}},
		},
		{
			name:       "a duration in days",
			manifest:   pipeline("{type: Retry, retry: {maxBackoff: 1d}}"),
			wantErrors: []wantError{{"spec.middleware[0].retry.maxBackoff", positive}},
		},
		{
			name:       "initialBackoff longer than maxBackoff",
			manifest:   pipeline("{type: Retry, retry: {initialBackoff: 20s, maxBackoff: 10s}}"),
			wantErrors: []wantError{{"spec.middleware[0].retry.initialBackoff", "initialBackoff must not be longer than maxBackoff"}},
		},
		{
			name:       "initialBackoff longer than the default maxBackoff",
			manifest:   pipeline("{type: Retry, retry: {initialBackoff: 1m}}"),
			wantErrors: []wantError{{"spec.middleware[0].retry.initialBackoff", "initialBackoff must not be longer than maxBackoff"}},
		},
		{
			name:       "maxAttempts 0",
			manifest:   pipeline("{type: Retry, retry: {maxAttempts: 0}}"),
			wantErrors: []wantError{{"spec.middleware[0].retry.maxAttempts", "should be greater than or equal to 1"}},
		},
		{
			name:       "multiplier 0",
			manifest:   pipeline("{type: Retry, retry: {multiplier: 0}}"),
			wantErrors: []wantError{{"spec.middleware[0].retry.multiplier", "should be greater than or equal to 1"}},
		},
		{
			name:       "a log level other than debug or info",
			manifest:   pipeline("{type: Logging, logging: {level: warn}}"),
			wantErrors: []wantError{{"spec.middleware[0].logging.level", `Unsupported value: "warn"`}},
		},
	})
}

func TestPipelineDefaults(t *testing.T) {
	obj, errs := loadCRD(t, "pipelines").admit(t, pipeline(
		"{type: Logging, logging: {}}", "{type: Retry, retry: {}}", "{type: Dedupe, dedupe: {}}"))
	if len(errs) != 0 {
		t.Fatalf("got errors, want none:\n%s", errorLines(errs))
	}
	var p v1alpha1.Pipeline
	decodeStrict(t, obj, &p)
	m := p.Spec.Middleware
	if got := m[0].Logging.Level; got != v1alpha1.LogLevelDebug {
		t.Errorf("logging.level: got %q, want debug", got)
	}
	r := m[1].Retry
	if r.MaxAttempts != 5 || r.Multiplier != 2 ||
		r.InitialBackoff.Duration != 100*time.Millisecond || r.MaxBackoff.Duration != 10*time.Second {
		t.Errorf("retry: got maxAttempts %d initialBackoff %v maxBackoff %v multiplier %d, want 5 100ms 10s 2",
			r.MaxAttempts, r.InitialBackoff, r.MaxBackoff, r.Multiplier)
	}
	if got := m[2].Dedupe.Window.Duration; got != 10*time.Minute {
		t.Errorf("dedupe.window: got %v, want 10m", got)
	}
}

func TestPipelineWithEveryFieldDecodes(t *testing.T) {
	obj, errs := loadCRD(t, "pipelines").admit(t, pipelineEveryField)
	if len(errs) != 0 {
		t.Fatalf("got errors, want none:\n%s", errorLines(errs))
	}
	var p v1alpha1.Pipeline
	decodeStrict(t, obj, &p)
	types := make([]v1alpha1.MiddlewareType, 0, len(p.Spec.Middleware))
	for _, m := range p.Spec.Middleware {
		types = append(types, m.Type)
	}
	want := []v1alpha1.MiddlewareType{
		v1alpha1.MiddlewareDeserialize, v1alpha1.MiddlewareLogging, v1alpha1.MiddlewareRetry, v1alpha1.MiddlewareMetrics,
		v1alpha1.MiddlewareDedupe, v1alpha1.MiddlewareTimeout, v1alpha1.MiddlewareFilter,
	}
	if len(types) != len(want) {
		t.Fatalf("middleware types: got %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("middleware types: got %v, want %v (order matters)", types, want)
		}
	}
	if got := p.Spec.Middleware[5].Timeout.After.Duration; got != 5*time.Second {
		t.Errorf("timeout.after: got %v, want 5s", got)
	}
	if got := p.Spec.Middleware[6].Filter.Expression; got != "event.name == 'ItemCreated'" {
		t.Errorf("filter.expression: got %q", got)
	}
}

// TestPipelineBuiltInGoIsValid: a Go client that sets only some settings
// sends no zero durations (they would fail the positive-duration rule).
func TestPipelineBuiltInGoIsValid(t *testing.T) {
	p := &v1alpha1.Pipeline{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Pipeline"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: v1alpha1.PipelineSpec{Middleware: []v1alpha1.Middleware{
			{Type: v1alpha1.MiddlewareLogging, Logging: &v1alpha1.LoggingSettings{}},
			{Type: v1alpha1.MiddlewareRetry, Retry: &v1alpha1.RetrySettings{MaxAttempts: 3}},
			{Type: v1alpha1.MiddlewareDedupe, Dedupe: &v1alpha1.DedupeSettings{}},
			{Type: v1alpha1.MiddlewareTimeout, Timeout: &v1alpha1.TimeoutSettings{After: metav1.Duration{Duration: 2 * time.Second}}},
		}},
		Status: v1alpha1.PipelineStatus{ObservedGeneration: 1},
	}
	if _, errs := loadCRD(t, "pipelines").admit(t, toManifest(t, p)); len(errs) != 0 {
		t.Fatalf("got errors, want none:\n%s", errorLines(errs))
	}
}
