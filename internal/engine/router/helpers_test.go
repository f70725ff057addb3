package router_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/router"
)

// receive waits for ch to deliver or close, failing the test after
// enginetest.Timeout.
func receive[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(enginetest.Timeout):
		t.Fatalf("timed out after %s waiting for %s", enginetest.Timeout, what)
		panic("unreachable")
	}
}

// fromStart is a Route.Start that replays every stream from its first event,
// so a test need not know when the route took its position.
func fromStart(context.Context, string) (uint64, error) { return 0, nil }

// countingStore is the real store counting Read calls, to tell events that
// came from the broker from events read back to fill a gap.
type countingStore struct {
	eventstore.Store
	reads atomic.Int64
}

func (s *countingStore) Read(ctx context.Context, stream string, after uint64, limit int) ([]engine.Message, error) {
	s.reads.Add(1)
	return s.Store.Read(ctx, stream, after, limit)
}

// harness is a router over the real in-memory broker, store and outbox, with
// the processor's part (append, then publish what was stored) done by the
// test.
type harness struct {
	broker *broker.Memory
	store  *countingStore
	outbox *outbox.Memory
	router *router.Router
}

// newHarness builds a router that is not running yet; cfg may adjust its
// Config. Call run to start it.
func newHarness(t testing.TB, cfg func(*router.Config)) *harness {
	t.Helper()
	h := &harness{
		broker: broker.NewMemory(),
		store:  &countingStore{Store: eventstore.NewMemory()},
		outbox: outbox.NewMemory(1000),
	}
	c := router.Config{Broker: h.broker, Store: h.store, Outbox: h.outbox}
	if cfg != nil {
		cfg(&c)
	}
	r, err := router.New(c)
	if err != nil {
		t.Fatalf("router.New: %v", err)
	}
	h.router = r
	return h
}

// run starts the router; the test's cleanup stops it and waits for Run to
// return, so no consumer outlives the test.
func (h *harness) run(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.router.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(enginetest.Timeout):
			t.Errorf("Run did not return within %s of its context ending", enginetest.Timeout)
		}
	})
}

// running returns a started harness.
func running(t testing.TB, cfg func(*router.Config)) *harness {
	t.Helper()
	h := newHarness(t, cfg)
	h.run(t)
	return h
}

// add adds route or fails the test.
func (h *harness) add(t testing.TB, route router.Route) {
	t.Helper()
	if err := h.router.Add(route); err != nil {
		t.Fatalf("Add(%q): %v", route.Name, err)
	}
}

// newEvents returns n events of stream with fresh ids.
func newEvents(stream string, n int) []engine.Message {
	events := make([]engine.Message, n)
	for i := range events {
		events[i] = engine.Message{
			ID:          uuid.NewString(),
			Name:        "Happened",
			Stream:      stream,
			ContentType: "application/json",
			Payload:     []byte(`{}`),
		}
	}
	return events
}

// appendNew stores n new events on stream without publishing them.
func (h *harness) appendNew(ctx context.Context, stream string, n int) ([]engine.Message, error) {
	res, err := h.store.Append(ctx, stream, eventstore.Any, newEvents(stream, n))
	if err != nil {
		return nil, fmt.Errorf("append %d events to %q: %w", n, stream, err)
	}
	return res.Events, nil
}

// emitNew does what the processor does for n new events: append them, then
// publish the stored events.
func (h *harness) emitNew(ctx context.Context, stream string, n int) ([]engine.Message, error) {
	events, err := h.appendNew(ctx, stream, n)
	if err != nil {
		return nil, err
	}
	if err := h.broker.Publish(ctx, events...); err != nil {
		return nil, fmt.Errorf("publish %d events of %q: %w", n, stream, err)
	}
	return events, nil
}

// emit is emitNew for the test goroutine.
func (h *harness) emit(t testing.TB, stream string, n int) []engine.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.Timeout)
	defer cancel()
	events, err := h.emitNew(ctx, stream, n)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// appendOnly appends n events without publishing them, as if the processor had
// crashed between append and publish.
func (h *harness) appendOnly(t testing.TB, stream string, n int) []engine.Message {
	t.Helper()
	events, err := h.appendNew(context.Background(), stream, n)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// publish publishes msgs again, as a processor retrying a batch would.
func (h *harness) publish(t testing.TB, msgs ...engine.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.Timeout)
	defer cancel()
	if err := h.broker.Publish(ctx, msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// stats returns the named route's progress on stream, failing when the route
// is unknown.
func (h *harness) stats(t testing.TB, route, stream string) router.StreamStats {
	t.Helper()
	st, ok := h.router.Stats(route)
	if !ok {
		t.Fatalf("Stats(%q): no such route", route)
	}
	return st.Streams[stream]
}

// recorder is a handler that remembers every message it was given.
type recorder struct {
	mu   sync.Mutex
	seen map[string][]uint64
	msgs []engine.Message
}

func newRecorder() *recorder { return &recorder{seen: make(map[string][]uint64)} }

// Handle records msg and succeeds.
func (r *recorder) Handle(_ context.Context, msg engine.Message) ([]engine.Message, error) {
	r.record(msg)
	return nil, nil
}

func (r *recorder) record(msg engine.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[msg.Stream] = append(r.seen[msg.Stream], msg.Sequence)
	r.msgs = append(r.msgs, msg)
}

// seqs returns the sequences of stream in the order they were handled.
func (r *recorder) seqs(stream string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen[stream])
}

// count returns how many messages of stream were handled.
func (r *recorder) count(stream string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen[stream])
}

// total returns how many messages were handled.
func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// messages returns every handled message in handling order.
func (r *recorder) messages() []engine.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// seqRange returns from, from+1, ..., to (nil when to < from).
func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// checkSeqs fails unless got is exactly want, naming what was compared.
func checkSeqs(t testing.TB, what string, got, want []uint64) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s handled sequences %s, want %s", what, compact(got), compact(want))
	}
}

// compact prints a sequence list with runs folded ("1-40 42 44-50"), so a
// failure over hundreds of events stays readable.
func compact(seqs []uint64) string {
	if len(seqs) == 0 {
		return "[]"
	}
	out := "["
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if i > 0 {
			out += " "
		}
		if j > i {
			out += fmt.Sprintf("%d-%d", seqs[i], seqs[j])
		} else {
			out += fmt.Sprint(seqs[i])
		}
		i = j + 1
	}
	return out + "]"
}
