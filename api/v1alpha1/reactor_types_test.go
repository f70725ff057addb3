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
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// reactorEveryField is a Reactor with every spec field set.
const reactorEveryField = `
apiVersion: eventsourcing.dev/v1alpha1
kind: Reactor
metadata:
  name: ship-orders
  namespace: default
spec:
  streams: [orders]
  eventNames: [OrderPaid]
  pipelineRef: {name: default}
  startFrom: Beginning
  sink:
    ref: {kind: Service, name: shipping, port: 8080}
    path: /events
    audience: shipping
  reply: {stream: orders-shipping}
  delivery: {ordering: Ordered, maxInFlight: 1, timeout: 30s}
`

// reactor returns a Reactor manifest with the given spec lines (indented by
// two spaces).
func reactor(spec string) string {
	return "apiVersion: eventsourcing.dev/v1alpha1\nkind: Reactor\nmetadata:\n  name: rx\n  namespace: default\nspec:\n" + spec
}

// reactorWith returns a Reactor of stream orders posting to a URI, with the
// given delivery lines.
func reactorWith(delivery string) string {
	return reactor("  streams: [orders]\n  sink: {uri: 'https://sink.example.com/events'}\n  delivery: {" + delivery + "}\n")
}

func TestReactorValidation(t *testing.T) {
	const exactlyOne = "set exactly one of ref (a Service in the reactor's namespace) and uri"
	const timeoutBounds = "must be a duration from 1s to 5m"
	runAdmitCases(t, loadCRD(t, "reactors"), []admitCase{
		{name: "every field set is valid", manifest: reactorEveryField},
		{name: "the example of docs/reactors.md is valid", manifest: docExample(t, "reactors.md", "Reactor")},
		{name: "an https uri", manifest: reactorWith("")},
		{name: "an http uri", manifest: reactor("  streams: [orders]\n  sink: {uri: 'http://10.0.0.7:8080/'}\n")},
		{name: "the bounds of maxInFlight and timeout", manifest: reactorWith("maxInFlight: 1000, timeout: 5m")},
		{name: "the low bounds of maxInFlight and timeout", manifest: reactorWith("maxInFlight: 1, timeout: 1s")},
		{
			name:       "both ref and uri",
			manifest:   reactor("  streams: [orders]\n  sink: {ref: {name: shipping, port: 80}, uri: 'https://a.example.com'}\n"),
			wantErrors: []wantError{{"spec.sink", exactlyOne}},
		},
		{
			name:       "neither ref nor uri",
			manifest:   reactor("  streams: [orders]\n  sink: {audience: shipping}\n"),
			wantErrors: []wantError{{"spec.sink", exactlyOne}},
		},
		{
			name:       "a uri that is not http(s)",
			manifest:   reactor("  streams: [orders]\n  sink: {uri: 'ftp://sink.example.com/events'}\n"),
			wantErrors: []wantError{{"spec.sink.uri", "uri must be an http:// or https:// URL"}},
		},
		{
			name:       "a path with a uri",
			manifest:   reactor("  streams: [orders]\n  sink: {uri: 'https://sink.example.com', path: /events}\n"),
			wantErrors: []wantError{{"spec.sink", "path is only for ref"}},
		},
		{
			name:       "a path without a leading slash",
			manifest:   reactor("  streams: [orders]\n  sink: {ref: {name: shipping, port: 80}, path: events}\n"),
			wantErrors: []wantError{{"spec.sink.path", "should match"}},
		},
		{
			name:       "a ref to another kind",
			manifest:   reactor("  streams: [orders]\n  sink: {ref: {kind: Pod, name: shipping, port: 80}}\n"),
			wantErrors: []wantError{{"spec.sink.ref.kind", `Unsupported value: "Pod"`}},
		},
		{
			name:       "a ref without a port",
			manifest:   reactor("  streams: [orders]\n  sink: {ref: {name: shipping}}\n"),
			wantErrors: []wantError{{"spec.sink.ref.port", "Required value"}},
		},
		{
			name:       "a port out of range",
			manifest:   reactor("  streams: [orders]\n  sink: {ref: {name: shipping, port: 70000}}\n"),
			wantErrors: []wantError{{"spec.sink.ref.port", "should be less than or equal to 65535"}},
		},
		{
			name:       "maxInFlight 0",
			manifest:   reactorWith("maxInFlight: 0"),
			wantErrors: []wantError{{"spec.delivery.maxInFlight", "should be greater than or equal to 1"}},
		},
		{
			name:       "maxInFlight over 1000",
			manifest:   reactorWith("maxInFlight: 1001"),
			wantErrors: []wantError{{"spec.delivery.maxInFlight", "should be less than or equal to 1000"}},
		},
		{
			name:       "a timeout under 1s",
			manifest:   reactorWith("timeout: 500ms"),
			wantErrors: []wantError{{"spec.delivery.timeout", timeoutBounds}},
		},
		{
			name:       "a timeout over 5m",
			manifest:   reactorWith("timeout: 5m1s"),
			wantErrors: []wantError{{"spec.delivery.timeout", timeoutBounds}},
		},
		{
			name:       "a timeout that is not a duration",
			manifest:   reactorWith("timeout: soon"),
			wantErrors: []wantError{{"spec.delivery.timeout", timeoutBounds}},
		},
		{
			name:       "an unknown ordering",
			manifest:   reactorWith("ordering: Random"),
			wantErrors: []wantError{{"spec.delivery.ordering", `Unsupported value: "Random"`}},
		},
		{
			name:       "no streams",
			manifest:   reactor("  streams: []\n  sink: {uri: 'https://sink.example.com'}\n"),
			wantErrors: []wantError{{"spec.streams", "should have at least 1 items"}},
		},
		{
			name:       "no sink",
			manifest:   reactor("  streams: [orders]\n"),
			wantErrors: []wantError{{"spec.sink", "Required value"}},
		},
		{
			name:       "a reply stream name that is not DNS-1123",
			manifest:   reactor("  streams: [orders]\n  sink: {uri: 'https://sink.example.com'}\n  reply: {stream: Orders_Out}\n"),
			wantErrors: []wantError{{"spec.reply.stream", "should match"}},
		},
		{
			name:       "an unknown startFrom",
			manifest:   reactor("  streams: [orders]\n  sink: {uri: 'https://sink.example.com'}\n  startFrom: Middle\n"),
			wantErrors: []wantError{{"spec.startFrom", `Unsupported value: "Middle"`}},
		},
	})
}

func TestReactorDefaultsAndDecodes(t *testing.T) {
	obj, errs := loadCRD(t, "reactors").admit(t, reactor(
		"  streams: [orders]\n  sink: {ref: {name: shipping, port: 8080}}\n"))
	if len(errs) != 0 {
		t.Fatalf("got errors, want none:\n%s", errorLines(errs))
	}
	var rx v1alpha1.Reactor
	decodeStrict(t, obj, &rx)
	if rx.Spec.StartFrom != v1alpha1.StartFromLatest {
		t.Errorf("startFrom: got %q, want Latest", rx.Spec.StartFrom)
	}
	if rx.Spec.Sink.Ref.Kind != "Service" {
		t.Errorf("sink.ref.kind: got %q, want Service", rx.Spec.Sink.Ref.Kind)
	}
	d := rx.Spec.Delivery
	if d.Ordering != v1alpha1.OrderingKeyOrdered || d.MaxInFlight != 16 || d.Timeout == nil || d.Timeout.Duration != 10*time.Second {
		t.Errorf("delivery: got %+v, want KeyOrdered, 16 in flight, 10s", d)
	}
}

func TestReactorWithEveryFieldDecodes(t *testing.T) {
	obj, errs := loadCRD(t, "reactors").admit(t, reactorEveryField)
	if len(errs) != 0 {
		t.Fatalf("got errors, want none:\n%s", errorLines(errs))
	}
	var rx v1alpha1.Reactor
	decodeStrict(t, obj, &rx)
	s := rx.Spec
	if !slices.Equal(s.Streams, []string{"orders"}) || s.PipelineRef.Name != "default" || s.Sink.Path != "/events" ||
		s.Sink.Ref.Port != 8080 || s.Sink.Audience != "shipping" || s.Reply.Stream != "orders-shipping" ||
		s.Delivery.Ordering != v1alpha1.OrderingOrdered || s.Delivery.Timeout.Duration != 30*time.Second {
		t.Errorf("spec: got %+v", s)
	}
}

func TestReactorPrinterColumns(t *testing.T) {
	c := loadCRD(t, "reactors")
	columns := c.v1.Spec.Versions[0].AdditionalPrinterColumns
	names := make([]string, 0, len(columns))
	for _, col := range columns {
		names = append(names, col.Name)
	}
	for _, want := range []string{"Ready", "Sink", "Delivered", "Dead Lettered", "Lag", "Age"} {
		if !slices.Contains(names, want) {
			t.Errorf("printer columns %v: want %q", names, want)
		}
	}
	if got := c.v1.Spec.Names.ShortNames; !slices.Equal(got, []string{"rx"}) {
		t.Errorf("short names: got %v, want [rx]", got)
	}
	if got := c.v1.Spec.Names.Categories; !slices.Equal(got, []string{"eventsourcing"}) {
		t.Errorf("categories: got %v, want [eventsourcing]", got)
	}
}
