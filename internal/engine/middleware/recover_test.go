package middleware

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

func panickingHandler(context.Context, engine.Message) ([]engine.Message, error) {
	panic("boom at the handler")
}

func TestRecoverTurnsPanicIntoRetryableError(t *testing.T) {
	out, err := Recover()(engine.HandlerFunc(panickingHandler)).Handle(context.Background(), testMessage())

	var pe *PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("got error %v, want a *PanicError", err)
	}
	if pe.Value != "boom at the handler" {
		t.Errorf("panic value: got %v, want %q", pe.Value, "boom at the handler")
	}
	if !strings.Contains(pe.Stack, "panickingHandler") || !strings.Contains(pe.Stack, "recover_test.go") {
		t.Errorf("stack does not point at the panic site:\n%s", pe.Stack)
	}
	if strings.Contains(pe.Stack, "runtime.") {
		t.Errorf("stack keeps runtime frames:\n%s", pe.Stack)
	}
	if lines := strings.Count(pe.Stack, "\n") + 1; lines > maxPanicFrames {
		t.Errorf("stack lines: got %d, want at most %d", lines, maxPanicFrames)
	}
	if !strings.Contains(err.Error(), "boom at the handler") {
		t.Errorf("error %q does not carry the panic value", err)
	}
	if engine.IsPermanent(err) {
		t.Errorf("got permanent error %v, want a retryable one", err)
	}
	if out != nil {
		t.Errorf("messages: got %v, want none", out)
	}
}

func TestRecoverPassesResultsThroughWithoutPanic(t *testing.T) {
	want := []engine.Message{{ID: "out-1"}}
	next := engine.HandlerFunc(func(context.Context, engine.Message) ([]engine.Message, error) {
		return want, errBoom
	})
	out, err := Recover()(next).Handle(context.Background(), testMessage())
	if err != errBoom || len(out) != 1 || out[0].ID != "out-1" {
		t.Errorf("got (%v, %v), want (%v, %v)", out, err, want, errBoom)
	}
}
