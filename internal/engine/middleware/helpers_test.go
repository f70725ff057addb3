package middleware

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// errBoom is a plain, retryable handler failure.
var errBoom = errors.New("boom")

// testMessage returns a stored JSON event.
func testMessage() engine.Message {
	return engine.Message{
		ID:            "evt-1",
		Name:          "ItemCreated",
		Stream:        "items",
		Sequence:      7,
		Time:          time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Headers:       map[string]string{"ce-source": "shop"},
		CorrelationID: "corr-1",
		ContentType:   "application/json",
		Payload:       []byte(`{"foo":"a","n":1}`),
	}
}

// scriptedHandler returns results[i] on its i-th call and the last one
// afterwards, and records the messages it was given.
type scriptedHandler struct {
	mu      sync.Mutex
	results []error
	msgs    []engine.Message
}

func newScriptedHandler(results ...error) *scriptedHandler {
	return &scriptedHandler{results: results}
}

func (h *scriptedHandler) Handle(_ context.Context, msg engine.Message) ([]engine.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, msg)
	if len(h.results) == 0 {
		return nil, nil
	}
	i := min(len(h.msgs), len(h.results)) - 1
	return nil, h.results[i]
}

func (h *scriptedHandler) calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

func (h *scriptedHandler) last() engine.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs[len(h.msgs)-1]
}

// noopHandler succeeds without doing anything.
var noopHandler = engine.HandlerFunc(func(context.Context, engine.Message) ([]engine.Message, error) {
	return nil, nil
})
