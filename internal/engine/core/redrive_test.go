package core_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/disk"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

// The filter of the pipeline under test fails on events without a region
// (CEL has no such key), which dead-letters them; the fixed one lets them
// through.
const (
	brokenRegionFilter = "event.payload.region == 'eu'"
	fixedRegionFilter  = "!has(event.payload.region) || event.payload.region == 'eu'"
)

// regionPipeline is a pipeline with Dedupe, so a redrive must get past it.
func regionPipeline(filter string) core.PipelineSpec {
	return core.PipelineSpec{Name: "ns/regions", Middleware: []core.MiddlewareSpec{
		{Type: core.Deserialize}, {Type: core.Retry}, {Type: core.Dedupe},
		{Type: core.Filter, FilterExpression: filter},
	}}
}

// lastN is a Reduce projection through regionPipeline: how many events it
// applied and the n of the last one, so the order of application shows.
func lastN() core.ProjectionSpec {
	return core.ProjectionSpec{Pipeline: "ns/regions", Spec: projection.Spec{
		Name: "ns/last", Streams: []string{"ns/s"}, StartFrom: projection.Beginning,
		Type: projection.Reduce, Key: "k",
		Reducer: projection.Reducer{Initial: "{'count': 0, 'last': 0}",
			Expression: "{'count': state.count + 1, 'last': event.payload.n}"},
	}}
}

// redriveSetup runs an engine with stream ns/s (dead letters to ns/dead),
// lastN through the broken filter, and a second projection, ns/all, that
// appends every event through the default pipeline.
func redriveSetup(t *testing.T, cfg core.Config) *core.Engine {
	t.Helper()
	e := startEngine(t, cfg)
	applyRedriveSpecs(t, e, brokenRegionFilter)
	return e
}

func applyRedriveSpecs(t *testing.T, e *core.Engine, filter string) {
	t.Helper()
	mustApplyStream(t, e, core.StreamSpec{Name: "ns/s", DefaultEventName: "E", DeadLetterStream: "ns/dead"})
	if err := e.ApplyPipeline(regionPipeline(filter)); err != nil {
		t.Fatal(err)
	}
	mustApplyProjection(t, e, lastN())
	mustApplyProjection(t, e, appendProjection("ns/all", "ns/s"))
}

// ingestN appends one event per n with id "e<n>", with region eu unless
// n is in noRegion, and returns nothing: ids are known.
func ingestN(t *testing.T, e *core.Engine, ns []int, noRegion ...int) {
	t.Helper()
	events := make([]core.Event, len(ns))
	for i, n := range ns {
		payload := fmt.Sprintf(`{"n":%d,"region":"eu"}`, n)
		for _, m := range noRegion {
			if m == n {
				payload = fmt.Sprintf(`{"n":%d}`, n)
			}
		}
		events[i] = core.Event{ID: fmt.Sprintf("e%d", n), Payload: []byte(payload)}
	}
	if _, err := e.Ingest(context.Background(), "ns/s", events); err != nil {
		t.Fatal(err)
	}
}

// waitDeadLetters waits until the dead-letter stream ns/dead holds n events.
func waitDeadLetters(t *testing.T, e *core.Engine, n int) []engine.Message {
	t.Helper()
	return waitStreamHolds(t, e, "ns/dead", n)
}

// waitStreamHolds waits until stream holds n events (of the first 100): a
// handler counts an event dead-lettered before the processor has stored
// the dead letter.
func waitStreamHolds(t *testing.T, e *core.Engine, stream string, n int) []engine.Message {
	t.Helper()
	var got []engine.Message
	enginetest.Eventually(t, fmt.Sprintf("%s to hold %d events", stream, n), func() (bool, string) {
		var err error
		got, err = e.ReadStream(context.Background(), stream, 0, 100)
		return err == nil && len(got) == n, fmt.Sprintf("%d, %v", len(got), err)
	})
	return got
}

func redrive(t *testing.T, e *core.Engine, ids []string, want int) {
	t.Helper()
	n, err := e.RedriveProjection(context.Background(), "ns/last", ids)
	if err != nil || n != want {
		t.Fatalf("RedriveProjection(ns/last, %v) = %d, %v; want %d redriven", ids, n, err, want)
	}
}

// A dead-lettered event is applied by a redrive once the pipeline is fixed,
// after the events handled since; the other projection of the stream sees
// nothing of it, and a second redrive finds nothing left to redrive.
func TestRedriveAppliesDeadLettersThroughTheFixedPipelineToTheProjectionAlone(t *testing.T) {
	e := redriveSetup(t, core.Config{})
	ingestN(t, e, []int{1, 2, 3}, 2)
	waitProcessed(t, e, "ns/last", 3)
	waitProcessed(t, e, "ns/all", 3)
	waitDeadLetters(t, e, 1)
	assertJSONEqual(t, query(t, e, "ns/last"), `{"k":{"count":2,"last":3}}`)

	if err := e.ApplyPipeline(regionPipeline(fixedRegionFilter)); err != nil {
		t.Fatal(err)
	}
	redrive(t, e, nil, 1)
	assertJSONEqual(t, query(t, e, "ns/last"), `{"k":{"count":3,"last":2}}`)
	all := query(t, e, "ns/all")
	if items, _ := all["items"].([]any); len(items) != 3 {
		t.Fatalf("ns/all holds %d items after the redrive, want 3: %v", len(items), all)
	}

	redrive(t, e, nil, 0)
	assertJSONEqual(t, query(t, e, "ns/last"), `{"k":{"count":3,"last":2}}`)
	// The projection goes on with new events as before.
	ingestN(t, e, []int{4})
	waitReadModel(t, e, "ns/last", `{"k":{"count":4,"last":4}}`)
}

// With ids only those dead letters are redriven; the rest stay for a
// later redrive without ids.
func TestRedriveByIDsRedrivesOnlyThoseEvents(t *testing.T) {
	e := redriveSetup(t, core.Config{})
	ingestN(t, e, []int{1, 2, 3, 4}, 2, 3)
	waitProcessed(t, e, "ns/last", 4)
	waitDeadLetters(t, e, 2)
	if err := e.ApplyPipeline(regionPipeline(fixedRegionFilter)); err != nil {
		t.Fatal(err)
	}

	redrive(t, e, []string{"e3", "no-such-event"}, 1)
	assertJSONEqual(t, query(t, e, "ns/last"), `{"k":{"count":3,"last":3}}`)
	redrive(t, e, []string{"e3"}, 0)
	redrive(t, e, nil, 1)
	assertJSONEqual(t, query(t, e, "ns/last"), `{"k":{"count":4,"last":2}}`)
	redrive(t, e, nil, 0)
}

// A redriven event that fails again is dead-lettered again, as a new dead
// letter with an id of its own, which a later redrive picks up.
func TestRedrivenEventThatFailsAgainIsDeadLetteredAgainAndCanBeRedrivenLater(t *testing.T) {
	e := redriveSetup(t, core.Config{})
	ingestN(t, e, []int{1, 2}, 2)
	waitProcessed(t, e, "ns/last", 2)
	first := waitDeadLetters(t, e, 1)[0]

	redrive(t, e, nil, 1) // the filter is still broken
	dead := waitDeadLetters(t, e, 2)
	again := dead[1]
	if again.ID == first.ID || again.Header(engine.HeaderDeadLetterEventID) != "e2" ||
		again.Header(engine.HeaderDeadLetterRedrives) != "1" {
		t.Fatalf("second dead letter: id %s (first %s), headers %v; want a new id for e2 with %s: 1",
			again.ID, first.ID, again.Headers, engine.HeaderDeadLetterRedrives)
	}
	assertJSONEqual(t, query(t, e, "ns/last"), `{"k":{"count":1,"last":1}}`)

	if err := e.ApplyPipeline(regionPipeline(fixedRegionFilter)); err != nil {
		t.Fatal(err)
	}
	redrive(t, e, nil, 1)
	assertJSONEqual(t, query(t, e, "ns/last"), `{"k":{"count":2,"last":2}}`)
	redrive(t, e, nil, 0)
}

func TestRedriveOfAnUnknownProjectionIsNotFound(t *testing.T) {
	e := startEngine(t, core.Config{})
	if _, err := e.RedriveProjection(context.Background(), "ns/nope", nil); !errors.Is(err, core.ErrProjectionNotFound) {
		t.Fatalf("err = %v, want ErrProjectionNotFound", err)
	}
}

// The record of what was redriven is durable: after a restart on the same
// data directory, a redrive finds nothing left and the read model holds the
// redriven event once.
func TestRedriveRecordSurvivesARestartOnDisk(t *testing.T) {
	dir := t.TempDir()
	run := func(t *testing.T, filter string, steps func(e *core.Engine)) {
		st, err := disk.Open(dir, disk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e := newEngine(t, core.Config{Store: st.Store, Outbox: st.Outbox, ReadModels: st.ReadModels})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		applyRedriveSpecs(t, e, filter)
		steps(e)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return")
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	run(t, brokenRegionFilter, func(e *core.Engine) {
		ingestN(t, e, []int{1, 2, 3}, 2)
		waitProcessed(t, e, "ns/last", 3)
		waitDeadLetters(t, e, 1)
	})
	run(t, fixedRegionFilter, func(e *core.Engine) {
		redrive(t, e, nil, 1)
		assertJSONEqual(t, query(t, e, "ns/last"), `{"k":{"count":3,"last":2}}`)
	})
	run(t, fixedRegionFilter, func(e *core.Engine) {
		redrive(t, e, nil, 0)
		assertJSONEqual(t, query(t, e, "ns/last"), `{"k":{"count":3,"last":2}}`)
	})
}
