package middleware

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// fakeDecoders returns value or err and records what it was asked.
type fakeDecoders struct {
	value any
	err   error

	calls               int
	stream, contentType string
	payload             []byte
}

func (d *fakeDecoders) Decode(stream, contentType string, payload []byte) (any, error) {
	d.calls++
	d.stream, d.contentType, d.payload = stream, contentType, payload
	return d.value, d.err
}

func TestDeserializeSetsValueFromPayload(t *testing.T) {
	want := map[string]any{"foo": "a"}
	dec := &fakeDecoders{value: want}
	next := newScriptedHandler()
	msg := testMessage()

	if _, err := Deserialize(dec)(next).Handle(context.Background(), msg); err != nil {
		t.Fatalf("Handle: got error %v, want nil", err)
	}
	if dec.stream != msg.Stream || dec.contentType != msg.ContentType || string(dec.payload) != string(msg.Payload) {
		t.Errorf("Decode got (%q, %q, %q), want (%q, %q, %q)", dec.stream, dec.contentType, dec.payload, msg.Stream, msg.ContentType, msg.Payload)
	}
	got, ok := next.last().Value.(map[string]any)
	if !ok || got["foo"] != "a" {
		t.Errorf("next got Value %#v, want %#v", next.last().Value, want)
	}
}

func TestDeserializeKeepsValueAlreadySet(t *testing.T) {
	dec := &fakeDecoders{value: "decoded"}
	next := newScriptedHandler()
	msg := testMessage()
	msg.Value = "already"

	if _, err := Deserialize(dec)(next).Handle(context.Background(), msg); err != nil {
		t.Fatalf("Handle: got error %v, want nil", err)
	}
	if dec.calls != 0 {
		t.Errorf("Decode calls: got %d, want 0", dec.calls)
	}
	if got := next.last().Value; got != "already" {
		t.Errorf("next got Value %#v, want %q", got, "already")
	}
}

func TestDeserializeErrorIsPermanentAndSaysWhichEvent(t *testing.T) {
	reason := errors.New("invalid character 'x' at offset 3")
	dec := &fakeDecoders{err: reason}
	next := newScriptedHandler()
	msg := testMessage()

	_, err := Deserialize(dec)(next).Handle(context.Background(), msg)
	if !engine.IsPermanent(err) {
		t.Fatalf("got error %v, want a permanent error", err)
	}
	if !errors.Is(err, reason) {
		t.Errorf("got error %v, want it to wrap %v", err, reason)
	}
	for _, want := range []string{msg.Stream, msg.ID, reason.Error()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if next.calls() != 0 {
		t.Errorf("next calls: got %d, want 0", next.calls())
	}
}

func TestDeserializePanicsOnNilDecoders(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Deserialize(nil) did not panic")
		}
	}()
	Deserialize(nil)
}

func TestDeserializeIfNeededOnlyValidatesWhenNoValueIsNeeded(t *testing.T) {
	tests := []struct {
		name      string
		needValue bool
		payload   string
		wantValue bool
		wantErr   bool
	}{
		{"value needed: decoded", true, `{"foo":"a"}`, true, false},
		{"value not needed: validated only", false, `{"foo":"a"}`, false, false},
		{"value not needed, bad payload: permanent error", false, `{"foo":`, false, true},
		{"value needed, bad payload: permanent error", true, `{"foo":`, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen engine.Message
			called := false
			next := engine.HandlerFunc(func(_ context.Context, msg engine.Message) ([]engine.Message, error) {
				seen, called = msg, true
				return nil, nil
			})
			mw := DeserializeIfNeeded(jsonDecoders{}, func(engine.Message) bool { return tt.needValue })
			msg := testMessage()
			msg.Payload = []byte(tt.payload)
			_, err := mw(next).Handle(context.Background(), msg)
			if tt.wantErr {
				if err == nil || !engine.IsPermanent(err) || called {
					t.Fatalf("got error %v (next called: %v), want a permanent error and next not called", err, called)
				}
				return
			}
			if err != nil || !called {
				t.Fatalf("got error %v (next called: %v), want nil and next called", err, called)
			}
			if (seen.Value != nil) != tt.wantValue {
				t.Errorf("next saw Value %v, want a decoded value: %v", seen.Value, tt.wantValue)
			}
		})
	}
}
