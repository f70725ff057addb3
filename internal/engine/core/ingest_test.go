package core_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

func TestIngestKeepsNothingOfTheCallersBuffers(t *testing.T) {
	ob := outbox.NewMemory(10)
	e := newEngine(t, core.Config{Outbox: ob})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	payload := []byte(`{"n":1}`)
	headers := map[string]string{"ce-source": "test"}
	if _, err := e.Ingest(context.Background(), "s", []core.Event{{Payload: payload, Headers: headers}}); err != nil {
		t.Fatal(err)
	}
	// The HTTP layer reuses its read buffer and header map for the next request.
	copy(payload, `{"n":2}`)
	headers["ce-source"] = "changed"

	pending, err := ob.Pending(context.Background(), 10)
	if err != nil || len(pending) != 1 {
		t.Fatalf("Pending: got %d entries, %v, want 1", len(pending), err)
	}
	got := pending[0].Message
	if string(got.Payload) != `{"n":1}` || got.Header("ce-source") != "test" {
		t.Fatalf("enqueued event: got payload %s ce-source %q, want {\"n\":1} and test", got.Payload, got.Header("ce-source"))
	}
	if got.ID == "" || got.CorrelationID == "" || got.ID == got.CorrelationID {
		t.Fatalf("enqueued event: got id %q correlation id %q, want two distinct generated ids", got.ID, got.CorrelationID)
	}
}

// Ingest checks JSON as encoding/json's syntax check does, without building
// the value: a number beyond a float64's range is well-formed JSON, so it is
// accepted, like the Deserialize middleware accepts it when no handler reads
// the value.
func TestIngestAcceptsWellFormedJSONWhoseNumbersDoNotFitAFloat64(t *testing.T) {
	e := newEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	if _, err := e.Ingest(context.Background(), "s", []core.Event{{Payload: []byte(`{"n":1e400}`)}}); err != nil {
		t.Fatalf("Ingest of {\"n\":1e400}: got error %v, want nil", err)
	}
}

func TestIngestIntoAFullOutboxIsRefusedBeforeValidating(t *testing.T) {
	e := newEngine(t, core.Config{Outbox: outbox.NewMemory(1)}) // not running: nothing drains
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	ingestJSON(t, e, "s", `{}`)
	// Not even a bad payload is looked at: the answer is "come back later".
	_, err := e.Ingest(context.Background(), "s", []core.Event{{Payload: []byte(`{"a":`)}})
	if !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("Ingest into a full outbox: got error %v, want outbox.ErrFull", err)
	}
}
