package processor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/processor"
)

// errInjected is what the fault-injecting wrappers fail with.
var errInjected = errors.New("injected failure")

// failCalls fails calls numbered from..to (1-based, inclusive); to == 0 means
// every call from from on.
type failCalls struct {
	from, to int64
	calls    atomic.Int64
}

func (f *failCalls) next() error {
	if f == nil {
		return nil
	}
	n := f.calls.Add(1)
	if n >= f.from && (f.to == 0 || n <= f.to) {
		return fmt.Errorf("call %d: %w", n, errInjected)
	}
	return nil
}

// faultyStore is the real store with Append failing on chosen calls; a
// failing call stores nothing.
type faultyStore struct {
	eventstore.Store
	append *failCalls
}

func (s *faultyStore) Append(
	ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []engine.Message,
) (eventstore.AppendResult, error) {
	if err := s.append.next(); err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.Store.Append(ctx, stream, expected, events)
}

// faultyBroker is the real broker with Publish failing on chosen calls; a
// failing call publishes nothing.
type faultyBroker struct {
	broker.Broker
	publish *failCalls
}

func (b *faultyBroker) Publish(ctx context.Context, msgs ...engine.Message) error {
	if err := b.publish.next(); err != nil {
		return err
	}
	return b.Broker.Publish(ctx, msgs...)
}

// spyOutbox is the real outbox that counts Pending calls, can fail
// MarkDispatched, and can lose every signal.
type spyOutbox struct {
	outbox.Outbox
	mark         *failCalls
	loseSignals  bool
	pendingCalls atomic.Int64
}

func (o *spyOutbox) Pending(ctx context.Context, limit int) ([]outbox.Entry, error) {
	entries, err := o.Outbox.Pending(ctx, limit)
	o.pendingCalls.Add(1) // after the call, so a caller sees it has returned
	return entries, err
}

func (o *spyOutbox) MarkDispatched(ctx context.Context, positions []uint64) error {
	if err := o.mark.next(); err != nil {
		return err
	}
	return o.Outbox.MarkDispatched(ctx, positions)
}

func (o *spyOutbox) Signal() <-chan struct{} {
	if o.loseSignals {
		return nil // never ready: only the polling ticker can wake the processor
	}
	return o.Outbox.Signal()
}

// start runs a Processor for cfg until the test ends or stop is called;
// stop cancels Run and returns its error.
func start(t *testing.T, cfg processor.Config) (p *processor.Processor, stop func() error) {
	t.Helper()
	p, err := processor.New(cfg)
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var stopped bool
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return p, stop
}

// newMessages returns n messages of stream with IDs prefix-1 .. prefix-n.
func newMessages(stream, prefix string, n int) []engine.Message {
	msgs := make([]engine.Message, n)
	for i := range msgs {
		msgs[i] = engine.Message{
			ID:          fmt.Sprintf("%s-%d", prefix, i+1),
			Name:        "ItemCreated",
			Stream:      stream,
			ContentType: "application/json",
			Payload:     fmt.Appendf(nil, `{"n":%d}`, i+1),
		}
	}
	return msgs
}

func enqueue(t *testing.T, ob outbox.Outbox, msgs []engine.Message) {
	t.Helper()
	if err := ob.Enqueue(t.Context(), msgs); err != nil {
		t.Fatalf("Enqueue: got error %v, want nil", err)
	}
}

func subscribe(t *testing.T, b broker.Broker, stream string) broker.Subscription {
	t.Helper()
	sub, err := b.Subscribe(stream, 10000)
	if err != nil {
		t.Fatalf("Subscribe(%q): got error %v, want nil", stream, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// receive waits for n messages on sub.
func receive(t *testing.T, sub broker.Subscription, n int) []engine.Message {
	t.Helper()
	out := make([]engine.Message, 0, n)
	timeout := time.After(enginetest.Timeout)
	for len(out) < n {
		select {
		case m := <-sub.C():
			out = append(out, m)
		case <-timeout:
			t.Fatalf("received %d messages in %s, want %d", len(out), enginetest.Timeout, n)
		}
	}
	return out
}

// received takes what sub holds now without waiting.
func received(sub broker.Subscription) []engine.Message {
	var out []engine.Message
	for {
		select {
		case m := <-sub.C():
			out = append(out, m)
		default:
			return out
		}
	}
}

// readAll reads every stored event of stream.
func readAll(t *testing.T, store eventstore.Store, stream string) []engine.Message {
	t.Helper()
	events, err := store.Read(t.Context(), stream, 0, 100000)
	if err != nil {
		t.Fatalf("Read(%q): got error %v, want nil", stream, err)
	}
	return events
}

func idsOf(msgs []engine.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// assertStoredOnceInOrder checks that stream holds exactly want, in order,
// with sequences 1..len(want).
func assertStoredOnceInOrder(t *testing.T, store eventstore.Store, stream string, want []engine.Message) []engine.Message {
	t.Helper()
	stored := readAll(t, store, stream)
	if got, want := idsOf(stored), idsOf(want); !slices.Equal(got, want) {
		t.Fatalf("stream %q stored IDs: got %v, want %v", stream, got, want)
	}
	for i, e := range stored {
		if e.Sequence != uint64(i+1) {
			t.Fatalf("stream %q event %q: got sequence %d, want %d", stream, e.ID, e.Sequence, i+1)
		}
	}
	return stored
}

// assertSubscriberSawEverySequence checks a subscriber's messages against
// the stored events: each sequence arrives in order with no gap, and any
// message at or below the newest sequence seen is a repeat of the stored
// event with that sequence. It returns how many repeats there were.
func assertSubscriberSawEverySequence(t *testing.T, got, stored []engine.Message) (repeats int) {
	t.Helper()
	var newest uint64
	for _, m := range got {
		if m.Sequence < 1 || m.Sequence > uint64(len(stored)) {
			t.Fatalf("subscriber got sequence %d, want 1..%d", m.Sequence, len(stored))
		}
		if want := stored[m.Sequence-1].ID; m.ID != want {
			t.Fatalf("subscriber got ID %q at sequence %d, want the stored %q", m.ID, m.Sequence, want)
		}
		switch {
		case m.Sequence <= newest:
			repeats++
		case m.Sequence == newest+1:
			newest = m.Sequence
		default:
			t.Fatalf("subscriber got sequence %d after %d, want %d (a gap)", m.Sequence, newest, newest+1)
		}
	}
	if newest != uint64(len(stored)) {
		t.Fatalf("subscriber's newest sequence: got %d, want %d", newest, len(stored))
	}
	return repeats
}
