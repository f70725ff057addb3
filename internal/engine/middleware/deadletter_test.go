package middleware

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// fakeEnqueuer records what it is given, or fails with err.
type fakeEnqueuer struct {
	mu   sync.Mutex
	err  error
	msgs []engine.Message
}

func (e *fakeEnqueuer) Enqueue(_ context.Context, msgs []engine.Message) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return e.err
	}
	e.msgs = append(e.msgs, msgs...)
	return nil
}

func (e *fakeEnqueuer) enqueued() []engine.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]engine.Message(nil), e.msgs...)
}

func testDeadLetter(t *testing.T, enq Enqueuer, handler string) engine.Middleware {
	t.Helper()
	mw, err := DeadLetter(DeadLetterConfig{Enqueuer: enq, Stream: "dead", Handler: handler})
	if err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	return mw
}

func TestDeadLetterEnqueuesFailedMessageWithHeaders(t *testing.T) {
	enq := &fakeEnqueuer{}
	msg := testMessage()
	failure := engine.WithAttempts(errBoom, 5)

	_, err := testDeadLetter(t, enq, "items-projection")(newScriptedHandler(failure)).Handle(context.Background(), msg)
	if !errors.Is(err, engine.ErrDeadLettered) {
		t.Fatalf("got error %v, want one wrapping ErrDeadLettered", err)
	}
	for _, want := range []string{msg.ID, msg.Stream, errBoom.Error()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	got := enq.enqueued()
	if len(got) != 1 {
		t.Fatalf("enqueued %d messages, want 1", len(got))
	}
	dead := got[0]
	fields := []struct{ name, got, want string }{
		{"Stream", dead.Stream, "dead"},
		{"Name", dead.Name, msg.Name},
		{"Payload", string(dead.Payload), string(msg.Payload)},
		{"ContentType", dead.ContentType, msg.ContentType},
		{"CorrelationID", dead.CorrelationID, msg.CorrelationID},
		{"CausationID", dead.CausationID, msg.ID},
		{"header ce-source", dead.Header("ce-source"), "shop"},
		{"header error", dead.Header(engine.HeaderDeadLetterError), errBoom.Error()},
		{"header stream", dead.Header(engine.HeaderDeadLetterStream), msg.Stream},
		{"header handler", dead.Header(engine.HeaderDeadLetterHandler), "items-projection"},
		{"header attempts", dead.Header(engine.HeaderDeadLetterAttempts), "5"},
		{"header event id", dead.Header(engine.HeaderDeadLetterEventID), msg.ID},
		{"header sequence", dead.Header(engine.HeaderDeadLetterSequence), "7"},
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s: got %q, want %q", f.name, f.got, f.want)
		}
	}
	if _, err := uuid.Parse(dead.ID); err != nil || dead.ID == msg.ID {
		t.Errorf("ID: got %q, want a new UUID (parse error %v)", dead.ID, err)
	}
	if dead.Time.IsZero() {
		t.Error("Time: got zero, want when it was dead-lettered")
	}
}

// A keyed event's copy is unkeyed in the dead-letter stream (versions
// count a key's events in its own stream) and names its key and version.
func TestDeadLetterOfAKeyedEventIsUnkeyedAndNamesTheKeyAndVersion(t *testing.T) {
	enq := &fakeEnqueuer{}
	msg := testMessage()
	msg.Key, msg.Version = "order-42", 3
	_, _ = testDeadLetter(t, enq, "p")(newScriptedHandler(errBoom)).Handle(context.Background(), msg)
	dead := enq.enqueued()[0]
	if dead.Key != "" || dead.Version != 0 ||
		dead.Header(engine.HeaderDeadLetterKey) != "order-42" || dead.Header(engine.HeaderDeadLetterVersion) != "3" {
		t.Fatalf("copy: key %q version %d, headers %v", dead.Key, dead.Version, dead.Headers)
	}
	unkeyed := testMessage()
	_, _ = testDeadLetter(t, enq, "p")(newScriptedHandler(errBoom)).Handle(context.Background(), unkeyed)
	if last := enq.enqueued()[1]; last.Header(engine.HeaderDeadLetterKey) != "" || last.Header(engine.HeaderDeadLetterVersion) != "" {
		t.Fatalf("copy of an unkeyed event has key headers: %v", last.Headers)
	}
}

func TestDeadLetterLeavesOriginalHeadersUnchanged(t *testing.T) {
	msg := testMessage()
	before := maps.Clone(msg.Headers)
	_, _ = testDeadLetter(t, &fakeEnqueuer{}, "p")(newScriptedHandler(errBoom)).Handle(context.Background(), msg)
	if !maps.Equal(msg.Headers, before) {
		t.Errorf("original headers: got %v, want %v", msg.Headers, before)
	}
}

func TestDeadLetterIDIsDeterministicPerHandlerAndEvent(t *testing.T) {
	enq := &fakeEnqueuer{}
	for _, handler := range []string{"p", "p", "q"} {
		_, _ = testDeadLetter(t, enq, handler)(newScriptedHandler(errBoom)).Handle(context.Background(), testMessage())
	}
	got := enq.enqueued()
	if got[0].ID != got[1].ID {
		t.Errorf("redelivered failure IDs: got %q and %q, want equal", got[0].ID, got[1].ID)
	}
	if got[0].ID == got[2].ID {
		t.Errorf("IDs for two handlers: both %q, want different", got[0].ID)
	}
}

func TestDeadLetterLeavesOtherOutcomesAlone(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	fromDead := testMessage()
	fromDead.Stream = "dead"
	alreadyDead := fmt.Errorf("sent: %w", engine.ErrDeadLettered)
	tests := []struct {
		name string
		ctx  context.Context
		msg  engine.Message
		err  error
	}{
		{"success", context.Background(), testMessage(), nil},
		{"skip", context.Background(), testMessage(), engine.ErrSkip},
		{"already dead-lettered", context.Background(), testMessage(), alreadyDead},
		{"shutdown", cancelled, testMessage(), errBoom},
		{"message from the dead-letter stream", context.Background(), fromDead, errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enq := &fakeEnqueuer{}
			_, err := testDeadLetter(t, enq, "p")(newScriptedHandler(tt.err)).Handle(tt.ctx, tt.msg)
			if err != tt.err {
				t.Errorf("got error %v, want %v unchanged", err, tt.err)
			}
			if n := len(enq.enqueued()); n != 0 {
				t.Errorf("enqueued %d messages, want 0", n)
			}
		})
	}
}

func TestDeadLetterReturnsEnqueueErrorSoMessageIsRedelivered(t *testing.T) {
	enqErr := errors.New("outbox full")
	_, err := testDeadLetter(t, &fakeEnqueuer{err: enqErr}, "p")(newScriptedHandler(errBoom)).Handle(context.Background(), testMessage())
	if !errors.Is(err, enqErr) || errors.Is(err, engine.ErrDeadLettered) {
		t.Errorf("got error %v, want one wrapping %v and not ErrDeadLettered", err, enqErr)
	}
}

func TestDeadLetterRejectsIncompleteConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     DeadLetterConfig
		wantMsg string
	}{
		{"no enqueuer", DeadLetterConfig{Stream: "dead", Handler: "p"}, "enqueuer is required"},
		{"no stream", DeadLetterConfig{Enqueuer: &fakeEnqueuer{}, Handler: "p"}, "stream is required"},
		{"no handler", DeadLetterConfig{Enqueuer: &fakeEnqueuer{}, Stream: "dead"}, "handler is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DeadLetter(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got error %v, want one containing %q", err, tt.wantMsg)
			}
		})
	}
}
