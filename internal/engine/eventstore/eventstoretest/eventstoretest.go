// Package eventstoretest is the conformance suite every eventstore.Store
// backend runs, as Watermill's pub/sub tests are: a backend declares what it
// supports beyond the Store interface (Features) and one Run covers it. It
// uses only the interfaces and the eventstore package's errors, and it
// allows what a durable backend may do differently: times kept to the
// microsecond, positions that increase without being contiguous.
package eventstoretest

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// waitTimeout bounds every wait of the suite, so a broken backend fails a
// test instead of hanging it.
const waitTimeout = 10 * time.Second

// ordersStream is the stream most behaviours append to and read from, and
// paymentsStream the other one where they need two.
const (
	ordersStream   = "orders"
	paymentsStream = "payments"
)

// Features says what a backend supports beyond eventstore.Store. The
// behaviours that need a feature the backend does not declare are skipped,
// saying which; a declared feature the store lacks fails them.
type Features struct {
	// Compaction: the store implements eventstore.Compactor.
	Compaction bool
	// Durable: what a store holds outlives it. Once it is closed, opening
	// its dir again gives a store with the same events, versions, positions
	// and idempotency records, appending where the last one left off.
	Durable bool
	// GlobalPosition: the store numbers events across all its streams
	// (engine.Message.Position); without it Position stays 0.
	GlobalPosition bool
}

// missing names the first feature of needs that f does not declare, "" if
// none.
func (f Features) missing(needs Features) string {
	switch {
	case needs.Compaction && !f.Compaction:
		return "Compaction"
	case needs.Durable && !f.Durable:
		return "Durable"
	case needs.GlobalPosition && !f.GlobalPosition:
		return "GlobalPosition"
	}
	return ""
}

// Open returns a store on the storage in dir: an empty one the first time,
// and for a Durable backend, once the last store on dir is closed, what
// that one held. Every subtest gets a dir of its own. A backend that keeps
// nothing on disk ignores dir.
type Open func(t *testing.T, dir string) eventstore.Store

// behaviour is one named subtest of the suite, run on a store from a new,
// empty storage.
type behaviour struct {
	name string
	run  func(t *testing.T, s eventstore.Store)
}

// groups are the behaviours on one store, with the features they need.
var groups = []struct {
	needs      Features
	behaviours []behaviour
}{
	{Features{}, appendBehaviours},
	{Features{GlobalPosition: true}, positionBehaviours},
	{Features{}, readBehaviours},
	{Features{}, concurrencyBehaviours},
	{Features{}, subscribeBehaviours},
	{Features{}, closeBehaviours},
	{Features{}, keyBehaviours},
	{Features{Compaction: true}, compactionBehaviours},
	{Features{Compaction: true}, keyCompactionBehaviours},
}

// Run runs every behaviour as a subtest of t, each on storage of its own
// that it opens with open. The suite closes every store it opens when its
// subtest ends, so a backend's Close must be safe to call twice.
func Run(t *testing.T, features Features, open Open) {
	for _, g := range groups {
		for _, b := range g.behaviours {
			t.Run(b.name, func(t *testing.T) {
				st := newStorage(t, features, g.needs, open)
				b.run(t, st.open(t))
			})
		}
	}
	for _, b := range reopenBehaviours {
		t.Run(b.name, func(t *testing.T) {
			b.run(t, newStorage(t, features, b.needs, open))
		})
	}
}

// storage is a subtest's dir and how to open a store on it.
type storage struct {
	dir      string
	openDir  Open
	features Features
}

// newStorage skips t unless the backend declares every feature in needs,
// and gives it a new dir.
func newStorage(t *testing.T, features, needs Features, open Open) *storage {
	t.Helper()
	if f := features.missing(needs); f != "" {
		t.Skipf("the backend does not declare Features.%s", f)
	}
	return &storage{dir: t.TempDir(), openDir: open, features: features}
}

// open opens a store on the subtest's dir and closes it when the subtest
// ends.
func (st *storage) open(t *testing.T) eventstore.Store {
	t.Helper()
	s := st.openDir(t, st.dir)
	featuresOf.Store(s, st.features)
	t.Cleanup(func() {
		featuresOf.Delete(s)
		if err := s.Close(); err != nil {
			t.Errorf("Close: got %v, want nil", err)
		}
	})
	if _, ok := s.(eventstore.Compactor); st.features.Compaction && !ok {
		t.Fatalf("%T does not implement eventstore.Compactor, yet the backend declares Features.Compaction", s)
	}
	return s
}

// reopen closes s, the store last opened on the subtest's dir, and opens
// the dir again.
func (st *storage) reopen(t *testing.T, s eventstore.Store) eventstore.Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close before reopening: got %v, want nil", err)
	}
	return st.open(t)
}

// featuresOf holds the Features of every store the suite has open, so
// that a behaviour checks positions only where the backend keeps them.
var featuresOf sync.Map

// positioned reports whether s numbers events across streams.
func positioned(s eventstore.Store) bool {
	f, _ := featuresOf.Load(s)
	return f.(Features).GlobalPosition
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
// it assigns (Sequence, Position, Time, Version) and the decoded Value.
// Empty headers and payloads compare equal to nil ones.
func content(m engine.Message) string {
	headers := m.Headers
	if len(headers) == 0 {
		headers = nil
	}
	return fmt.Sprintf("id=%q name=%q stream=%q key=%q corr=%q caus=%q type=%q headers=%v payload=%q",
		m.ID, m.Name, m.Stream, m.Key, m.CorrelationID, m.CausationID, m.ContentType, headers, m.Payload)
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
// sequence, position, time and version.
func checkStored(t *testing.T, what string, got, want engine.Message) {
	t.Helper()
	checkContent(t, what, got, want, want.Stream)
	if got.Sequence != want.Sequence || got.Position != want.Position || !got.Time.Equal(want.Time) || got.Version != want.Version {
		t.Errorf("%s: got sequence %d position %d time %s version %d, want %d %d %s %d",
			what, got.Sequence, got.Position, got.Time, got.Version, want.Sequence, want.Position, want.Time, want.Version)
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
