package core_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// waitRate waits until the stream's rate is want events a second.
func waitRate(t *testing.T, e *core.Engine, stream string, want float64) {
	t.Helper()
	enginetest.Eventually(t, fmt.Sprintf("stream %s to have %v events a second", stream, want), func() (bool, string) {
		st, err := e.StreamStats(context.Background(), stream)
		if err != nil {
			t.Fatalf("StreamStats(%s): %v", stream, err)
		}
		return st.EventsPerSecond == want, fmt.Sprintf("%+v", st)
	})
}

func TestStreamRateCountsTheNewEventsOfTheLastTenSeconds(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "ns/s", DefaultEventName: "E"})
	events := make([]core.Event, 20)
	for i := range events {
		events[i] = core.Event{ID: fmt.Sprint("e", i), Payload: []byte(`{}`)}
	}
	for range 2 { // the second time every id is known: nothing new
		if _, err := e.Ingest(context.Background(), "ns/s", events); err != nil {
			t.Fatal(err)
		}
	}
	waitRate(t, e, "ns/s", 2) // 20 events over 10 s
	// Applying the stream again (a changed spec) keeps its count.
	mustApplyStream(t, e, core.StreamSpec{Name: "ns/s", DefaultEventName: "F"})
	if st, err := e.StreamStats(context.Background(), "ns/s"); err != nil || st.EventsPerSecond != 2 {
		t.Fatalf("StreamStats after the stream changed = %+v, %v; want 2 events a second still", st, err)
	}
}

// idAppender stores what ingest accepts as a shared store does
// (core.Appender): an id it holds comes back as first stored.
type idAppender struct {
	mu     sync.Mutex
	stored map[string]engine.Message
}

func (a *idAppender) AppendAccepted(_ context.Context, _ string, msgs []engine.Message, _ []bool,
	_ versions.Expect) ([]engine.Message, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]engine.Message, len(msgs))
	for i, m := range msgs {
		if old, ok := a.stored[m.ID]; ok {
			m = old
		}
		a.stored[m.ID] = m
		out[i] = m
	}
	return out, nil
}

func TestStreamRateWithAnAppenderCountsOnlyTheNewEvents(t *testing.T) {
	e := newEngine(t, core.Config{Appender: &idAppender{stored: map[string]engine.Message{}}})
	t.Cleanup(func() { _ = e.Close() })
	mustApplyStream(t, e, core.StreamSpec{Name: "ns/s", DefaultEventName: "E"})
	for round := range 2 { // the second round repeats the first's ids, and adds one
		events := []core.Event{{ID: "a", Payload: []byte(`{}`)}, {ID: "b", Payload: []byte(`{}`)}}
		if round == 1 {
			events = append(events, core.Event{ID: "c", Payload: []byte(`{}`)})
		}
		if _, err := e.Ingest(context.Background(), "ns/s", events); err != nil {
			t.Fatal(err)
		}
	}
	waitRate(t, e, "ns/s", 0.3) // a, b and c over 10 s
}

func TestStreamRateCountsDeadLetters(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "ns/dead"})
	mustApplyStream(t, e, core.StreamSpec{Name: "ns/s", DefaultEventName: "E", DeadLetterStream: "ns/dead"})
	mustApplyProjection(t, e, core.ProjectionSpec{Spec: projection.Spec{
		Name: "ns/by-sku", Streams: []string{"ns/s"}, StartFrom: projection.Beginning,
		Type: projection.Count, KeyExpression: "event.payload.sku",
	}})
	ingestJSON(t, e, "ns/s", `{"nosku":1}`, `{"nosku":2}`, `{"sku":"a"}`)
	waitProcessed(t, e, "ns/by-sku", 3)
	waitRate(t, e, "ns/dead", 0.2)
}

func TestNamesListWhatTheEngineHasSorted(t *testing.T) {
	e := newEngine(t, core.Config{AllowPrivateSinks: true})
	t.Cleanup(func() { _ = e.Close() })
	for _, s := range []string{"b/s", "a/t", "a/s"} {
		mustApplyStream(t, e, core.StreamSpec{Name: s, DefaultEventName: "E"})
	}
	mustApplyProjection(t, e, appendProjection("b/p", "b/s"))
	mustApplyProjection(t, e, appendProjection("a/p", "a/s"))
	mustApplyReactor(t, e, core.ReactorSpec{Name: "a/r", Streams: []string{"a/t"}, SinkURL: "http://127.0.0.1:1/"})
	check := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("StreamNames", e.StreamNames(), []string{"a/s", "a/t", "b/s"})
	check("ProjectionNames", e.ProjectionNames(), []string{"a/p", "b/p"})
	check("ReactorNames", e.ReactorNames(), []string{"a/r"})
	e.RemoveStream("a/t")
	check("StreamNames after a removal", e.StreamNames(), []string{"a/s", "b/s"})
}

// A standby replica lists what it recorded, and tells the lag from the
// checkpoints the leader stored in the shared storage.
func TestStandbyListsItsHandlersWithTheStoredLag(t *testing.T) {
	ctx := context.Background()
	store, readModels := eventstore.NewMemory(), readmodel.NewMemory()
	msgs := make([]engine.Message, 5)
	for i := range msgs {
		msgs[i] = engine.Message{ID: fmt.Sprint("e", i), Name: "E", Stream: "ns/s", Time: time.Now(), Payload: []byte(`{}`)}
	}
	if _, err := store.Append(ctx, "ns/s", eventstore.Any, msgs); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(readModels.Apply(ctx, "ns/p", nil, readmodel.Checkpoint{"ns/s": 3}))
	must(readModels.Apply(ctx, core.ReactorHandlerName("ns/r"), nil, readmodel.Checkpoint{"ns/s": 1}))

	e := newEngine(t, core.Config{Store: store, ReadModels: readModels, Standby: true, AllowPrivateSinks: true})
	t.Cleanup(func() { _ = e.Close() })
	mustApplyStream(t, e, core.StreamSpec{Name: "ns/s", DefaultEventName: "E"})
	mustApplyProjection(t, e, appendProjection("ns/p", "ns/s"))
	mustApplyReactor(t, e, core.ReactorSpec{Name: "ns/r", Streams: []string{"ns/s"}, SinkURL: "http://127.0.0.1:1/"})

	if got := e.ProjectionNames(); !slices.Equal(got, []string{"ns/p"}) {
		t.Errorf("ProjectionNames = %v, want [ns/p]", got)
	}
	if got := e.ReactorNames(); !slices.Equal(got, []string{"ns/r"}) {
		t.Errorf("ReactorNames = %v, want [ns/r]", got)
	}
	ps, err := e.ProjectionStats(ctx, "ns/p")
	if err != nil || !ps.Standby || ps.Lag != 2 {
		t.Errorf("ProjectionStats = %+v, %v; want Standby and a lag of 2 (5 stored, checkpoint 3)", ps, err)
	}
	rs, err := e.ReactorStats(ctx, "ns/r")
	if err != nil || !rs.Standby || rs.Lag != 4 {
		t.Errorf("ReactorStats = %+v, %v; want Standby and a lag of 4 (5 stored, checkpoint 1)", rs, err)
	}
}
