package processor_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/processor"
)

func TestProcessorAppendsPublishesAndMarksDispatched(t *testing.T) {
	ob, store, bus := outbox.NewMemory(0), eventstore.NewMemory(), broker.NewMemory()
	sub := subscribe(t, bus, "items")
	p, _ := start(t, processor.Config{Outbox: ob, Store: store, Broker: bus})

	msgs := newMessages("items", "item", 3)
	enqueue(t, ob, msgs)

	got := receive(t, sub, 3)
	stored := assertStoredOnceInOrder(t, store, "items", msgs)
	if repeats := assertSubscriberSawEverySequence(t, got, stored); repeats != 0 {
		t.Errorf("subscriber repeats: got %d, want 0", repeats)
	}
	for i, m := range got {
		if string(m.Payload) != string(msgs[i].Payload) || m.Name != msgs[i].Name {
			t.Errorf("published %d: got name %q payload %s, want %q %s", i, m.Name, m.Payload, msgs[i].Name, msgs[i].Payload)
		}
	}
	enginetest.Eventually(t, "the outbox to empty", func() bool { return ob.Len() == 0 })
	// Marking follows publishing: nothing more can be on its way.
	if extra := received(sub); len(extra) != 0 {
		t.Errorf("published after the first delivery: got %v, want nothing (no failure, so no repeat)", idsOf(extra))
	}
	enginetest.Eventually(t, "Stats.Dispatched to reach 3", func() bool { return p.Stats().Dispatched == 3 })
	if s := p.Stats(); s.Batches < 1 || s.Failures != 0 || s.LastError != "" {
		t.Errorf("Stats: got %+v, want at least one batch and no failure", s)
	}
}

func TestObserveBatchIsToldOfEachBatchAndItsEntries(t *testing.T) {
	ob, store, bus := outbox.NewMemory(0), eventstore.NewMemory(), broker.NewMemory()
	var mu sync.Mutex
	var entries int
	var batches int
	observe := func(n int, took time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		batches++
		entries += n
		if took <= 0 {
			t.Errorf("batch of %d observed as taking %s, want a positive duration", n, took)
		}
	}
	p, _ := start(t, processor.Config{Outbox: ob, Store: store, Broker: bus, ObserveBatch: observe})
	enqueue(t, ob, newMessages("items", "item", 5))
	enginetest.Eventually(t, "5 entries observed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return entries == 5
	})
	mu.Lock()
	defer mu.Unlock()
	if uint64(batches) != p.Stats().Batches {
		t.Errorf("observed %d batches, want the %d Stats counts", batches, p.Stats().Batches)
	}
}

func TestProcessorWakesOnEnqueueWithoutWaitingForPoll(t *testing.T) {
	ob := &spyOutbox{Outbox: outbox.NewMemory(0)}
	store, bus := eventstore.NewMemory(), broker.NewMemory()
	sub := subscribe(t, bus, "items")
	start(t, processor.Config{Outbox: ob, Store: store, Broker: bus, PollingInterval: time.Hour})
	// Enqueue only once the first pass found nothing, so that pass cannot
	// be what dispatches the message.
	enginetest.Eventually(t, "the first Pending call", func() bool { return ob.pendingCalls.Load() > 0 })

	enqueue(t, ob, newMessages("items", "item", 1))

	if got := receive(t, sub, 1); got[0].ID != "item-1" {
		t.Fatalf("published: got %q, want item-1", got[0].ID)
	}
}

func TestProcessorWithABatchDelayTakesWhatArrivesMeanwhileInOneBatch(t *testing.T) {
	ob := &spyOutbox{Outbox: outbox.NewMemory(0)}
	store, bus := eventstore.NewMemory(), broker.NewMemory()
	sub := subscribe(t, bus, "items")
	const delay = 200 * time.Millisecond
	p, _ := start(t, processor.Config{Outbox: ob, Store: store, Broker: bus, PollingInterval: time.Hour, BatchDelay: delay})
	enginetest.Eventually(t, "the first Pending call", func() bool { return ob.pendingCalls.Load() > 0 })

	began := time.Now()
	enqueue(t, ob, newMessages("items", "a", 1))
	enqueue(t, ob, newMessages("items", "b", 1))
	got := receive(t, sub, 2)
	if waited := time.Since(began); waited < delay {
		t.Errorf("dispatched %s after the first signal, want no sooner than the %s delay", waited, delay)
	}
	if ids := []string{got[0].ID, got[1].ID}; !slices.Equal(ids, []string{"a-1", "b-1"}) {
		t.Fatalf("published: got %v, want [a-1 b-1]", ids)
	}
	if s := p.Stats(); s.Batches != 1 {
		t.Fatalf("Stats.Batches: got %d, want the two messages in 1 batch", s.Batches)
	}
}

func TestProcessorWithABatchDelayDoesNotWaitWhenAFullBatchIsPending(t *testing.T) {
	ob := &spyOutbox{Outbox: outbox.NewMemory(0)}
	store, bus := eventstore.NewMemory(), broker.NewMemory()
	sub := subscribe(t, bus, "items")
	start(t, processor.Config{
		Outbox: ob, Store: store, Broker: bus, PollingInterval: time.Hour, BatchSize: 4, BatchDelay: time.Hour,
	})
	enginetest.Eventually(t, "the first Pending call", func() bool { return ob.pendingCalls.Load() > 0 })

	enqueue(t, ob, newMessages("items", "item", 4))

	if got := receive(t, sub, 4); got[3].ID != "item-4" {
		t.Fatalf("published: got %q last, want item-4", got[3].ID)
	}
}

func TestProcessorPollsAsSafetyNet(t *testing.T) {
	ob := &spyOutbox{Outbox: outbox.NewMemory(0), loseSignals: true}
	store, bus := eventstore.NewMemory(), broker.NewMemory()
	sub := subscribe(t, bus, "items")
	start(t, processor.Config{Outbox: ob, Store: store, Broker: bus, PollingInterval: 5 * time.Millisecond})
	enginetest.Eventually(t, "the first Pending call", func() bool { return ob.pendingCalls.Load() > 0 })

	enqueue(t, ob, newMessages("items", "item", 1))

	if got := receive(t, sub, 1); got[0].ID != "item-1" {
		t.Fatalf("published: got %q, want item-1", got[0].ID)
	}
}

func TestProcessorKeepsPerStreamOrder(t *testing.T) {
	ob, bus := outbox.NewMemory(0), broker.NewMemory()
	// Some appends fail, so entries of a stream are retried while later
	// entries of other streams go through.
	store := &faultyStore{Store: eventstore.NewMemory(), append: &failCalls{from: 3, to: 6}}
	streams := []string{"a", "b", "c"}
	subs := make(map[string]broker.Subscription)
	for _, s := range streams {
		subs[s] = subscribe(t, bus, s)
	}
	start(t, processor.Config{Outbox: ob, Store: store, Broker: bus, BatchSize: 7, PollingInterval: time.Millisecond})

	// Interleave the streams in uneven runs, enqueued while the processor runs.
	want := make(map[string][]engine.Message)
	for i := range 60 {
		s := streams[(i*i+i/7)%len(streams)]
		n := 1 + i%4
		msgs := newMessages(s, fmt.Sprintf("%s-%d", s, i), n)
		enqueue(t, ob, msgs)
		want[s] = append(want[s], msgs...)
	}

	for _, s := range streams {
		got := receive(t, subs[s], len(want[s]))
		enginetest.Eventually(t, "the outbox to empty", func() bool { return ob.Len() == 0 })
		stored := assertStoredOnceInOrder(t, store, s, want[s])
		got = append(got, received(subs[s])...)
		assertSubscriberSawEverySequence(t, got, stored)
	}
}

func TestProcessorRetriesAfterStoreFailure(t *testing.T) {
	ob, bus := outbox.NewMemory(0), broker.NewMemory()
	store := &faultyStore{Store: eventstore.NewMemory(), append: &failCalls{from: 1, to: 2}}
	sub := subscribe(t, bus, "items")
	p, _ := start(t, processor.Config{Outbox: ob, Store: store, Broker: bus, PollingInterval: time.Millisecond})

	msgs := newMessages("items", "item", 2)
	enqueue(t, ob, msgs)

	got := receive(t, sub, 2)
	stored := assertStoredOnceInOrder(t, store, "items", msgs)
	assertSubscriberSawEverySequence(t, got, stored)
	enginetest.Eventually(t, "the outbox to empty", func() bool { return ob.Len() == 0 })
	s := p.Stats()
	if s.Failures != 2 || !strings.Contains(s.LastError, errInjected.Error()) || !strings.Contains(s.LastError, `"items"`) {
		t.Errorf("Stats: got Failures %d LastError %q, want 2 failures and the injected error naming the stream", s.Failures, s.LastError)
	}
	if s.Dispatched != 2 {
		t.Errorf("Stats.Dispatched: got %d, want 2", s.Dispatched)
	}
}

func TestRunDrainsOutboxOnShutdown(t *testing.T) {
	// No signal and an hour between polls: only the drain can dispatch.
	ob := &spyOutbox{Outbox: outbox.NewMemory(0), loseSignals: true}
	store, bus := eventstore.NewMemory(), broker.NewMemory()
	sub := subscribe(t, bus, "items")
	_, stop := start(t, processor.Config{Outbox: ob, Store: store, Broker: bus, PollingInterval: time.Hour, BatchSize: 4})
	enginetest.Eventually(t, "the first Pending call", func() bool { return ob.pendingCalls.Load() > 0 })

	msgs := newMessages("items", "item", 10)
	enqueue(t, ob, msgs)
	if err := stop(); err != nil {
		t.Fatalf("Run after shutdown: got error %v, want nil", err)
	}

	if got := ob.Len(); got != 0 {
		t.Errorf("outbox after Run returned: got %d entries, want 0", got)
	}
	stored := assertStoredOnceInOrder(t, store, "items", msgs)
	assertSubscriberSawEverySequence(t, received(sub), stored)
}

func TestRunReturnsDrainErrorWhenOutboxCannotBeDrained(t *testing.T) {
	ob := &spyOutbox{Outbox: outbox.NewMemory(0), loseSignals: true}
	store := &faultyStore{Store: eventstore.NewMemory(), append: &failCalls{from: 1}}
	_, stop := start(t, processor.Config{Outbox: ob, Store: store, Broker: broker.NewMemory(),
		PollingInterval: time.Hour, DrainTimeout: 20 * time.Millisecond})
	enginetest.Eventually(t, "the first Pending call", func() bool { return ob.pendingCalls.Load() > 0 })
	enqueue(t, ob, newMessages("items", "item", 1))

	if err := stop(); !errors.Is(err, errInjected) {
		t.Fatalf("Run after a failed drain: got error %v, want the injected store failure", err)
	}
	if got := ob.Len(); got != 1 {
		t.Errorf("outbox after a failed drain: got %d entries, want 1 (nothing dropped)", got)
	}
}

func TestProcessorEncodesValueOnlyMessagesAsJSON(t *testing.T) {
	tests := []struct {
		name            string
		msg             engine.Message
		wantPayload     string
		wantContentType string
	}{
		{
			name:            "value without content type becomes application/json",
			msg:             engine.Message{Value: map[string]any{"sku": "a1", "n": int64(2)}},
			wantPayload:     `{"n":2,"sku":"a1"}`,
			wantContentType: "application/json",
		},
		{
			name:            "value keeps its content type",
			msg:             engine.Message{Value: []any{"x", true}, ContentType: "application/cloudevents+json"},
			wantPayload:     `["x",true]`,
			wantContentType: "application/cloudevents+json",
		},
		{
			name:            "payload wins over value",
			msg:             engine.Message{Payload: []byte(`{"raw":1}`), Value: map[string]any{"other": 2}, ContentType: "application/json"},
			wantPayload:     `{"raw":1}`,
			wantContentType: "application/json",
		},
		{
			name:            "no payload and no value stays empty",
			msg:             engine.Message{},
			wantPayload:     ``,
			wantContentType: "",
		},
	}
	ob, store, bus := outbox.NewMemory(0), eventstore.NewMemory(), broker.NewMemory()
	sub := subscribe(t, bus, "derived")
	start(t, processor.Config{Outbox: ob, Store: store, Broker: bus})
	for i, tt := range tests {
		msg := tt.msg
		msg.ID, msg.Stream, msg.Name = fmt.Sprintf("d-%d", i), "derived", "Derived"
		enqueue(t, ob, []engine.Message{msg})
	}

	published := receive(t, sub, len(tests))
	stored := readAll(t, store, "derived")
	if len(stored) != len(tests) {
		t.Fatalf("stored: got %d events, want %d", len(stored), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, got := range []struct {
				where string
				msg   engine.Message
			}{{"stored", stored[i]}, {"published", published[i]}} {
				if string(got.msg.Payload) != tt.wantPayload || got.msg.ContentType != tt.wantContentType {
					t.Errorf("%s: got payload %q content type %q, want %q %q",
						got.where, got.msg.Payload, got.msg.ContentType, tt.wantPayload, tt.wantContentType)
				}
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	valid := processor.Config{Outbox: outbox.NewMemory(0), Store: eventstore.NewMemory(), Broker: broker.NewMemory()}
	tests := []struct {
		name   string
		change func(*processor.Config)
		want   string
	}{
		{"no outbox", func(c *processor.Config) { c.Outbox = nil }, "outbox is required"},
		{"no store", func(c *processor.Config) { c.Store = nil }, "store is required"},
		{"no broker", func(c *processor.Config) { c.Broker = nil }, "broker is required"},
		{"negative batch size", func(c *processor.Config) { c.BatchSize = -1 }, "batch size -1 is negative"},
		{"negative polling interval", func(c *processor.Config) { c.PollingInterval = -time.Second }, "polling interval -1s is negative"},
		{"negative drain timeout", func(c *processor.Config) { c.DrainTimeout = -time.Second }, "drain timeout -1s is negative"},
		{"negative batch delay", func(c *processor.Config) { c.BatchDelay = -time.Second }, "batch delay -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.change(&cfg)
			_, err := processor.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: got error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := processor.New(valid); err != nil {
		t.Fatalf("New with only the required fields: got error %v, want nil", err)
	}
}

func TestStatsStartsEmpty(t *testing.T) {
	p, err := processor.New(processor.Config{Outbox: outbox.NewMemory(0), Store: eventstore.NewMemory(), Broker: broker.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Stats(); got != (processor.Stats{}) {
		t.Fatalf("Stats of a new processor: got %+v, want zero", got)
	}
}

// A subscriber that stops reading (a stuck handler) must not hold up the
// processor: it keeps storing and publishing that stream and every other.
func TestProcessorKeepsDispatchingWhenASubscriberStopsReading(t *testing.T) {
	ob, store, bus := outbox.NewMemory(0), eventstore.NewMemory(), broker.NewMemory()
	stuck, err := bus.Subscribe("orders", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stuck.Close() })
	reader := subscribe(t, bus, "users")
	start(t, processor.Config{Outbox: ob, Store: store, Broker: bus, BatchSize: 4})

	orders, users := newMessages("orders", "order", 50), newMessages("users", "user", 50)
	for i := range orders {
		enqueue(t, ob, []engine.Message{orders[i], users[i]})
	}

	got := receive(t, reader, len(users))
	stored := assertStoredOnceInOrder(t, store, "users", users)
	assertSubscriberSawEverySequence(t, got, stored)
	assertStoredOnceInOrder(t, store, "orders", orders)
	enginetest.Eventually(t, "the outbox to empty", func() bool { return ob.Len() == 0 })
}
