package processor_test

import (
	"errors"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/processor"
)

// crashScenario is a first processor that fails for good at one step of its
// second batch, as if it crashed there, and is then stopped.
type crashScenario struct {
	// crashed builds the first processor's dependencies around the real ones.
	crashed func(ob outbox.Outbox, store eventstore.Store, bus broker.Broker) processor.Config
	// wantSeenBeforeRestart is how many events the subscriber has by the
	// time the first processor stops.
	wantSeenBeforeRestart int
	// wantRepeats says whether the restart must publish repeats.
	wantRepeats bool
}

const (
	crashBatchSize = 4
	crashEvents    = 10
)

// runCrash checks that after the crash a new Processor over the same outbox
// and store stores every event exactly once, in order, and that the
// subscriber sees every sequence, seeing duplicates only as repeats.
func runCrash(t *testing.T, sc crashScenario) {
	ob, store, bus := outbox.NewMemory(0), eventstore.NewMemory(), broker.NewMemory()
	sub := subscribe(t, bus, "orders")
	msgs := newMessages("orders", "order", crashEvents)
	// Enqueued before the first processor starts, so its first pass takes
	// two full batches: the first succeeds, the second crashes.
	enqueue(t, ob, msgs)

	cfg := sc.crashed(ob, store, bus)
	// An hour of backoff: the first processor does not retry before it is
	// stopped, and its drain gives up quickly.
	cfg.BatchSize, cfg.PollingInterval, cfg.DrainTimeout = crashBatchSize, time.Hour, 20*time.Millisecond
	first, stop := start(t, cfg)
	enginetest.Eventually(t, "the first processor to fail", func() bool { return first.Stats().Failures > 0 })
	if err := stop(); !errors.Is(err, errInjected) {
		t.Fatalf("first processor's Run: got error %v, want the injected failure from its drain", err)
	}
	if got, want := ob.Len(), crashEvents-crashBatchSize; got != want {
		t.Fatalf("outbox after the crash: got %d entries, want %d (only the first batch marked)", got, want)
	}
	if v, _ := store.Version(t.Context(), "orders"); v != 2*crashBatchSize {
		t.Fatalf("stream version after the crash: got %d, want %d (two batches appended)", v, 2*crashBatchSize)
	}
	seen := received(sub)
	if len(seen) < sc.wantSeenBeforeRestart {
		t.Fatalf("subscriber before the restart: got %d events, want at least %d", len(seen), sc.wantSeenBeforeRestart)
	}

	second, _ := start(t, processor.Config{Outbox: ob, Store: store, Broker: bus, BatchSize: crashBatchSize})
	enginetest.Eventually(t, "the new processor to empty the outbox", func() bool { return ob.Len() == 0 })
	if got := second.Stats().Dispatched; got != crashEvents-crashBatchSize {
		t.Errorf("new processor's Stats.Dispatched: got %d, want %d", got, crashEvents-crashBatchSize)
	}

	stored := assertStoredOnceInOrder(t, store, "orders", msgs)
	// Marking follows publishing, so with the outbox empty every publish
	// is already in the subscriber's queue.
	seen = append(seen, received(sub)...)
	repeats := assertSubscriberSawEverySequence(t, seen, stored)
	if sc.wantRepeats && repeats == 0 {
		t.Errorf("subscriber repeats: got none, want the re-published second batch")
	}
	if !sc.wantRepeats && repeats != 0 {
		t.Errorf("subscriber repeats: got %d, want none (the crashed batch was never published)", repeats)
	}
}

func TestCrashBetweenAppendAndPublishLosesAndDuplicatesNothing(t *testing.T) {
	runCrash(t, crashScenario{
		crashed: func(ob outbox.Outbox, store eventstore.Store, bus broker.Broker) processor.Config {
			return processor.Config{Outbox: ob, Store: store, Broker: &faultyBroker{Broker: bus, publish: &failCalls{from: 2}}}
		},
		wantSeenBeforeRestart: crashBatchSize,
		wantRepeats:           false,
	})
}

func TestCrashBetweenPublishAndMarkDispatchedLosesAndDuplicatesNothing(t *testing.T) {
	runCrash(t, crashScenario{
		crashed: func(ob outbox.Outbox, store eventstore.Store, bus broker.Broker) processor.Config {
			return processor.Config{Outbox: &spyOutbox{Outbox: ob, mark: &failCalls{from: 2}}, Store: store, Broker: bus}
		},
		wantSeenBeforeRestart: 2 * crashBatchSize,
		wantRepeats:           true,
	})
}
