package natsstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
)

// With the server gone an append fails within the timeout as unavailable
// (the HTTP API's 503), and once the server is back the same append
// succeeds: nothing hangs, nothing is stored twice.
func TestAnAppendWhileJetStreamIsAwayFailsAsUnavailableAndARetrySucceeds(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.Start(t, natstest.Options{Dir: dir})
	url := srv.ClientURL()
	c, err := natsstore.Connect(t.Context(), natsstore.Options{URL: url, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s, err := natsstore.NewEventStore(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ev := func(id string) []engine.Message { return []engine.Message{{ID: id, Name: "N", Payload: []byte(`{}`)}} }
	if _, err := s.Append(t.Context(), "orders", eventstore.Any, ev("a")); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	start := time.Now()
	_, err = s.Append(t.Context(), "orders", eventstore.Any, ev("b"))
	if !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("append with the server away: got %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the append failed after %s, want about the 1s timeout", d)
	}

	natstest.StartAt(t, natstest.Options{Dir: dir}, url)
	var res eventstore.AppendResult
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err = s.Append(t.Context(), "orders", eventstore.Any, ev("b"))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("append once the server is back: %v", err)
	}
	got, err := s.Read(t.Context(), "orders", 0, 0)
	if err != nil || len(got) != 2 || res.Events[0].Sequence != 2 {
		t.Fatalf("stored %d events (%v), b at %d; want a and b once", len(got), err, res.Events[0].Sequence)
	}
}
