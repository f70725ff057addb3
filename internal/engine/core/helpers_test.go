package core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

// startEngine builds an engine with in-memory parts from cfg and runs it
// until the test ends.
func startEngine(t *testing.T, cfg core.Config) *core.Engine {
	t.Helper()
	e := newEngine(t, cfg)
	runEngine(t, e)
	return e
}

func newEngine(t *testing.T, cfg core.Config) *core.Engine {
	t.Helper()
	if cfg.PollingInterval == 0 {
		cfg.PollingInterval = 10 * time.Millisecond
	}
	e, err := core.New(cfg)
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	return e
}

// runEngine runs e until the test ends and checks that Run returns cleanly.
func runEngine(t *testing.T, e *core.Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of cancel")
		}
		_ = e.Close()
	})
}

func mustApplyStream(t *testing.T, e *core.Engine, spec core.StreamSpec) {
	t.Helper()
	if err := e.ApplyStream(spec); err != nil {
		t.Fatalf("ApplyStream(%s): %v", spec.Name, err)
	}
}

func mustApplyProjection(t *testing.T, e *core.Engine, spec core.ProjectionSpec) {
	t.Helper()
	if err := e.ApplyProjection(context.Background(), spec); err != nil {
		t.Fatalf("ApplyProjection(%s): %v", spec.Name, err)
	}
}

func appendProjection(name string, streams ...string) core.ProjectionSpec {
	return core.ProjectionSpec{Spec: projection.Spec{
		Name: name, Streams: streams, StartFrom: projection.Beginning, Type: projection.Append, Key: "items",
	}}
}

func ingestJSON(t *testing.T, e *core.Engine, stream string, payloads ...string) {
	t.Helper()
	events := make([]core.Event, len(payloads))
	for i, p := range payloads {
		events[i] = core.Event{ContentType: "application/json", Payload: []byte(p)}
	}
	if _, err := e.Ingest(context.Background(), stream, events); err != nil {
		t.Fatalf("Ingest(%s): %v", stream, err)
	}
}

func waitProcessed(t *testing.T, e *core.Engine, name string, want uint64) core.ProjectionStats {
	t.Helper()
	var st core.ProjectionStats
	enginetest.Eventually(t, fmt.Sprintf("projection %s to settle %d events", name, want), func() (bool, string) {
		var err error
		st, err = e.ProjectionStats(context.Background(), name)
		if err != nil {
			t.Fatalf("ProjectionStats(%s): %v", name, err)
		}
		return st.Processed+st.DeadLettered >= want, fmt.Sprintf("%+v", st)
	})
	if got := st.Processed + st.DeadLettered; got != want {
		t.Fatalf("projection %s settled %d events, want %d", name, got, want)
	}
	return st
}

// waitReadModel waits until the projection's read model is want (JSON),
// failing at once if delivery stalls on any of its streams.
func waitReadModel(t *testing.T, e *core.Engine, name, want string) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "read model "+name+" to be "+want, func() bool {
		st, err := e.ProjectionStats(context.Background(), name)
		if err != nil {
			t.Fatalf("ProjectionStats(%s): %v", name, err)
		}
		if len(st.Stalled) > 0 {
			t.Fatalf("projection %s is stalled: %v", name, st.Stalled)
		}
		return reflect.DeepEqual(query(t, e, name), w)
	})
}

// query returns the read model decoded from JSON.
func query(t *testing.T, e *core.Engine, name string) map[string]any {
	t.Helper()
	doc, err := e.Query(context.Background(), name)
	if err != nil {
		t.Fatalf("Query(%s): %v", name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("read model %s is not a JSON object: %v\n%s", name, err, doc)
	}
	return m
}

func assertJSONEqual(t *testing.T, got map[string]any, want string) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		t.Fatalf("read model = %s, want %s", g, want)
	}
}
