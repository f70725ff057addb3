package router_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/router"
)

// emitCause stores and publishes one event with a fixed id and correlation
// id, so two harnesses hold the same cause.
func (h *harness) emitCause(t testing.TB) engine.Message {
	t.Helper()
	res, err := h.store.Append(context.Background(), "orders", eventstore.Any, []engine.Message{{
		ID: "order-1", Name: "OrderPlaced", Stream: "orders", CorrelationID: "request-7",
		ContentType: "application/json", Payload: []byte(`{"total":3}`),
	}})
	if err != nil {
		t.Fatalf("append cause: %v", err)
	}
	h.publish(t, res.Events...)
	return res.Events[0]
}

// pending returns the outbox's entries, failing the test on error.
func (h *harness) pending(t testing.TB) []outbox.Entry {
	t.Helper()
	entries, err := h.outbox.Pending(context.Background(), 100)
	if err != nil {
		t.Fatalf("outbox Pending: %v", err)
	}
	return entries
}

// invoicing returns a handler's three outputs for any cause: one without an
// id, one with its own id, one with its own correlation id.
func invoicing(context.Context, engine.Message) ([]engine.Message, error) {
	return []engine.Message{
		{Name: "InvoiceDue", Stream: "invoices", Payload: []byte(`{"due":3}`)},
		{ID: "invoice-fixed", Name: "InvoiceDue", Stream: "invoices", Payload: []byte(`{"due":4}`)},
		{Name: "MailQueued", Stream: "mails", CorrelationID: "mail-batch", Value: map[string]any{"to": "x"}},
	}, nil
}

func TestHandlerOutputsReachOutboxWithCausationAndCorrelation(t *testing.T) {
	// Two routers (a restart, a second replica) handle the same cause.
	var outputs [2][]outbox.Entry
	for i := range outputs {
		h := running(t, nil)
		h.add(t, router.Route{Name: "billing", Streams: []string{"orders"}, Handler: engine.HandlerFunc(invoicing), Start: fromStart})
		if i == 0 {
			// Another route's outputs for the same cause must get other ids.
			h.add(t, router.Route{Name: "mailing", Streams: []string{"orders"}, Handler: engine.HandlerFunc(invoicing), Start: fromStart})
		}
		cause := h.emitCause(t)
		want := 3 * (2 - i)
		enginetest.Eventually(t, "the outputs in the outbox", func() bool { return h.outbox.Len() == want })
		for _, e := range h.pending(t) {
			m := e.Message
			wantCorrelation := "request-7"
			if m.Stream == "mails" {
				wantCorrelation = "mail-batch"
			}
			if m.CausationID != cause.ID || m.CorrelationID != wantCorrelation {
				t.Errorf("output %s to %s: causation %q correlation %q, want %q and %q",
					m.ID, m.Stream, m.CausationID, m.CorrelationID, cause.ID, wantCorrelation)
			}
			if m.ID != "invoice-fixed" {
				if _, err := uuid.Parse(m.ID); err != nil {
					t.Errorf("derived output id %q is not a UUID: %v", m.ID, err)
				}
			}
		}
		outputs[i] = h.pending(t)
	}

	ids := func(entries []outbox.Entry) []string {
		s := make([]string, 0, len(entries))
		for _, e := range entries {
			s = append(s, e.Message.ID)
		}
		return s
	}
	first, second := ids(outputs[0]), ids(outputs[1])
	// The first router holds both routes' outputs; billing's are the ones
	// that appear in the second router's outbox.
	for _, id := range second {
		if !slices.Contains(first, id) {
			t.Errorf("billing output id %q from the second router is not among the first router's %q: ids are not deterministic", id, first)
		}
	}
	derived := slices.DeleteFunc(slices.Clone(first), func(id string) bool { return id == "invoice-fixed" })
	slices.Sort(derived)
	if got := slices.Compact(slices.Clone(derived)); len(got) != 4 {
		t.Errorf("derived ids across two routes and two outputs each = %q, want 4 distinct", derived)
	}
}

// A failing or empty handler puts nothing in the outbox.
func TestHandlerWithoutOutputsEnqueuesNothing(t *testing.T) {
	h := running(t, nil)
	rec := newRecorder()
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: rec, Start: fromStart})
	h.emit(t, "a", 3)
	enginetest.Eventually(t, "every event", func() bool { return rec.count("a") == 3 })
	if got := h.outbox.Len(); got != 0 {
		t.Errorf("outbox holds %d messages, want 0", got)
	}
}

// A full outbox stalls the route until there is room; the outputs of the
// event in hand must then be enqueued, not lost. Here the handler behaves like
// a projection with a checkpoint (or Dedupe): once it has applied an event it
// skips it.
func TestOutputsRefusedByAFullOutboxAreEnqueuedOnceThereIsRoom(t *testing.T) {
	small := outbox.NewMemory(3) // room for one event's outputs
	h := running(t, func(c *router.Config) { c.Outbox = small })
	h.outbox = small
	if err := small.Enqueue(context.Background(), newEvents("filler", 1)); err != nil {
		t.Fatalf("fill the outbox: %v", err)
	}
	var mu sync.Mutex
	applied := uint64(0)
	handler := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		if msg.Sequence <= applied {
			return nil, engine.ErrSkip
		}
		applied = msg.Sequence
		return invoicing(ctx, msg)
	})
	h.add(t, router.Route{
		Name: "billing", Streams: []string{"orders"}, Handler: engine.Chain(handler, router.CheckOutputs()), Start: fromStart,
	})
	cause := h.emitCause(t)
	enginetest.Eventually(t, "the route to report the full outbox", func() bool {
		return strings.Contains(h.stats(t, "billing", "orders").Err, outbox.ErrFull.Error())
	})

	// Make room: the processor dispatches the filler.
	if err := small.MarkDispatched(context.Background(), []uint64{h.pending(t)[0].Position}); err != nil {
		t.Fatalf("MarkDispatched: %v", err)
	}
	enginetest.Eventually(t, "the event to settle", func() bool { return h.stats(t, "billing", "orders").Delivered == 1 })
	got := h.pending(t)
	if len(got) != 3 || got[0].Message.CausationID != cause.ID {
		t.Errorf("outbox after making room holds %d messages (first %+v), want the 3 outputs of %s", len(got), got, cause.ID)
	}
}

func TestCheckOutputsFailsPermanentlyForAnOutputWithoutStream(t *testing.T) {
	errHandler := errors.New("handler failed")
	valid := engine.Message{Stream: "out", Payload: []byte(`{}`)}
	tests := []struct {
		name          string
		out           []engine.Message
		err           error
		wantErr       error // matched with errors.Is; nil wants success
		wantPermanent bool
	}{
		{name: "no outputs"},
		{name: "output with payload", out: []engine.Message{valid}},
		{name: "output with value only", out: []engine.Message{{Stream: "out", Value: map[string]any{}}}},
		{name: "output without stream", out: []engine.Message{valid, {Payload: []byte(`{}`)}}, wantPermanent: true},
		{name: "output without payload or value", out: []engine.Message{{Stream: "out"}}, wantPermanent: true},
		{name: "handler error passes through", err: errHandler, wantErr: errHandler},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := engine.HandlerFunc(func(context.Context, engine.Message) ([]engine.Message, error) {
				return tt.out, tt.err
			})
			out, err := engine.Chain(next, router.CheckOutputs()).Handle(context.Background(), engine.Message{ID: "e1"})
			switch {
			case tt.wantPermanent:
				if !engine.IsPermanent(err) {
					t.Fatalf("got error %v, want a permanent one", err)
				}
				if out != nil {
					t.Errorf("got %d outputs with the error, want none", len(out))
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) || engine.IsPermanent(err) {
					t.Errorf("got error %v, want %v unchanged (not permanent)", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("got error %v, want nil", err)
			case len(out) != len(tt.out):
				t.Errorf("got %d outputs, want %d", len(out), len(tt.out))
			}
		})
	}

	t.Run("the route moves on", func(t *testing.T) {
		// A stand-in for the dead-letter middleware: it settles permanent
		// failures as dead-lettered.
		deadLetter := func(next engine.Handler) engine.Handler {
			return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
				out, err := next.Handle(ctx, msg)
				if engine.IsPermanent(err) {
					return nil, errors.Join(err, engine.ErrDeadLettered)
				}
				return out, err
			})
		}
		bad := engine.HandlerFunc(func(_ context.Context, msg engine.Message) ([]engine.Message, error) {
			if msg.Sequence == 1 {
				return []engine.Message{{Name: "Orphan", Payload: []byte(`{}`)}}, nil
			}
			return []engine.Message{valid}, nil
		})
		h := running(t, nil)
		var mu sync.Mutex
		var got []settled
		h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Start: fromStart,
			Handler: engine.Chain(bad, deadLetter, router.CheckOutputs()),
			Settle: func(_ context.Context, msg engine.Message, o router.Outcome) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, settled{msg.Sequence, o})
				return nil
			}})
		h.emit(t, "a", 2)
		enginetest.Eventually(t, "both events settled", func() bool { return h.stats(t, "p", "a").Delivered == 2 })
		mu.Lock()
		defer mu.Unlock()
		if want := []settled{{1, router.DeadLettered}}; !slices.Equal(got, want) {
			t.Errorf("Settle calls = %v, want %v", got, want)
		}
		if n := h.outbox.Len(); n != 1 {
			t.Errorf("outbox holds %d messages, want only event 2's output", n)
		}
	})
}
