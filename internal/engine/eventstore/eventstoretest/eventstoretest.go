// Package eventstoretest is the conformance suite every eventstore.Store
// backend runs: the memory store now, durable and distributed ones later.
// It uses only the Store interface and the eventstore package's errors, and
// it allows what a durable backend may do differently: times kept to the
// microsecond, positions that increase without being contiguous.
package eventstoretest

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// waitTimeout bounds every wait of the suite, so a broken backend fails a
// test instead of hanging it.
const waitTimeout = 10 * time.Second

// ordersStream is the stream most behaviours append to and read from.
const ordersStream = "orders"

// behaviour is one named subtest of the suite.
type behaviour struct {
	name string
	run  func(t *testing.T, s eventstore.Store)
}

// Run runs every behaviour as a subtest of t, each against a new, empty store
// from newStore. The suite closes each store when its subtest ends, so a
// backend's Close must be safe to call twice.
func Run(t *testing.T, newStore func(t *testing.T) eventstore.Store) {
	groups := [][]behaviour{appendBehaviours, readBehaviours, concurrencyBehaviours, subscribeBehaviours, closeBehaviours}
	for _, group := range groups {
		for _, b := range group {
			t.Run(b.name, func(t *testing.T) {
				s := newStore(t)
				t.Cleanup(func() {
					if err := s.Close(); err != nil {
						t.Errorf("Close: got %v, want nil", err)
					}
				})
				b.run(t, s)
			})
		}
	}
}

// testContext ends when the test does or after waitTimeout.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// event returns an event with every field a store keeps set from id.
func event(id string) engine.Message {
	return engine.Message{
		ID:            id,
		Name:          "ItemCreated",
		ContentType:   "application/json",
		Payload:       []byte(`{"id":"` + id + `"}`),
		CorrelationID: "corr-" + id,
	}
}

// events returns n events with ids prefix-1 .. prefix-n.
func events(prefix string, n int) []engine.Message {
	out := make([]engine.Message, n)
	for i := range out {
		out[i] = event(fmt.Sprintf("%s-%d", prefix, i+1))
	}
	return out
}

// mustAppend appends and fails the test on error.
func mustAppend(
	t *testing.T, s eventstore.Store, stream string, expected eventstore.ExpectedVersion, evs ...engine.Message,
) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(t.Context(), stream, expected, evs)
	if err != nil {
		t.Fatalf("Append(%q, %d, %d events): got error %v, want nil", stream, expected, len(evs), err)
	}
	return res
}

// mustRead reads and fails the test on error.
func mustRead(t *testing.T, s eventstore.Store, stream string, after uint64, limit int) []engine.Message {
	t.Helper()
	got, err := s.Read(t.Context(), stream, after, limit)
	if err != nil {
		t.Fatalf("Read(%q, %d, %d): got error %v, want nil", stream, after, limit, err)
	}
	return got
}

// mustVersion returns the stream's version and fails the test on error.
func mustVersion(t *testing.T, s eventstore.Store, stream string) uint64 {
	t.Helper()
	v, err := s.Version(t.Context(), stream)
	if err != nil {
		t.Fatalf("Version(%q): got error %v, want nil", stream, err)
	}
	return v
}

// content is what a store must keep of m as given: everything but the fields
// it assigns (Sequence, Position, Time) and the decoded Value. Empty headers
// and payloads compare equal to nil ones.
func content(m engine.Message) string {
	headers := m.Headers
	if len(headers) == 0 {
		headers = nil
	}
	return fmt.Sprintf("id=%q name=%q stream=%q corr=%q caus=%q type=%q headers=%v payload=%q",
		m.ID, m.Name, m.Stream, m.CorrelationID, m.CausationID, m.ContentType, headers, m.Payload)
}

// checkContent fails when got does not hold want's content in stream.
func checkContent(t *testing.T, what string, got, want engine.Message, stream string) {
	t.Helper()
	want.Stream = stream
	want.Headers = maps.Clone(want.Headers)
	if g, w := content(got), content(want); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// checkStored fails when got is not the same stored event as want: content,
// sequence, position and time.
func checkStored(t *testing.T, what string, got, want engine.Message) {
	t.Helper()
	checkContent(t, what, got, want, want.Stream)
	if got.Sequence != want.Sequence || got.Position != want.Position || !got.Time.Equal(want.Time) {
		t.Errorf("%s: got sequence %d position %d time %s, want %d %d %s",
			what, got.Sequence, got.Position, got.Time, want.Sequence, want.Position, want.Time)
	}
}

// checkSequences fails unless got holds sequences first, first+1, ...
func checkSequences(t *testing.T, what string, got []engine.Message, first uint64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: got %d events, want %d", what, len(got), n)
	}
	for i, m := range got {
		if want := first + uint64(i); m.Sequence != want {
			t.Fatalf("%s: event %d (id %q) has sequence %d, want %d", what, i, m.ID, m.Sequence, want)
		}
	}
}
