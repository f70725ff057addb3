package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

var subscribeBehaviours = []behaviour{
	{"SubscriptionCatchesUpThenFollowsLiveAppends", testSubscriptionCatchesUpThenFollowsLiveAppends},
	{"SubscriptionStartsAfterTheGivenSequence", testSubscriptionStartsAfterTheGivenSequence},
	{"SubscriptionToAnUnknownStreamWaitsForItsFirstEvent", testSubscriptionToAnUnknownStreamWaitsForItsFirstEvent},
	{"SubscriptionSeesOnlyItsStream", testSubscriptionSeesOnlyItsStream},
	{
		"SubscriptionSwitchesOverUnderConcurrentAppendsWithoutGapOrDuplicate",
		testSubscriptionSwitchesOverUnderConcurrentAppendsWithoutGapOrDuplicate,
	},
	{"NextHonoursTheContext", testNextHonoursTheContext},
	{"ClosingASubscriptionEndsItsNext", testClosingASubscriptionEndsItsNext},
}

// result is what one Next call returned.
type result struct {
	msg engine.Message
	err error
}

// nextAsync calls sub.Next in a goroutine and delivers its result, so a test
// can act (append, close) while Next waits.
func nextAsync(ctx context.Context, sub eventstore.Subscription) <-chan result {
	ch := make(chan result, 1)
	go func() {
		m, err := sub.Next(ctx)
		ch <- result{m, err}
	}()
	return ch
}

// await returns the result of a nextAsync call, failing after waitTimeout.
func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("Next did not return within %s", waitTimeout)
		return result{}
	}
}

// subscribe subscribes and closes the subscription when the test ends.
func subscribe(t *testing.T, s eventstore.Store, stream string, after uint64) eventstore.Subscription {
	t.Helper()
	sub, err := s.Subscribe(testContext(t), stream, after)
	if err != nil {
		t.Fatalf("Subscribe(%q, %d): got error %v, want nil", stream, after, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// mustNext returns the subscription's next event and fails the test on error.
func mustNext(t *testing.T, sub eventstore.Subscription) engine.Message {
	t.Helper()
	m, err := sub.Next(testContext(t))
	if err != nil {
		t.Fatalf("Next: got error %v, want an event", err)
	}
	return m
}

func testSubscriptionCatchesUpThenFollowsLiveAppends(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, ordersStream, eventstore.Any, events("stored", 3)...).Events
	sub := subscribe(t, s, ordersStream, 0)
	for _, want := range stored {
		checkStored(t, "caught-up event", mustNext(t, sub), want)
	}
	pending := nextAsync(testContext(t), sub)
	live := mustAppend(t, s, ordersStream, eventstore.Any, events("live", 2)...).Events
	r := await(t, pending)
	if r.err != nil {
		t.Fatalf("Next waiting for a live append: got error %v, want an event", r.err)
	}
	checkStored(t, "first live event", r.msg, live[0])
	checkStored(t, "second live event", mustNext(t, sub), live[1])
}

func testSubscriptionStartsAfterTheGivenSequence(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, ordersStream, eventstore.Any, events("a", 5)...).Events
	sub := subscribe(t, s, ordersStream, 3)
	checkStored(t, "first event after 3", mustNext(t, sub), stored[3])
	checkStored(t, "second event after 3", mustNext(t, sub), stored[4])
}

func testSubscriptionToAnUnknownStreamWaitsForItsFirstEvent(t *testing.T, s eventstore.Store) {
	sub := subscribe(t, s, ordersStream, 0)
	pending := nextAsync(testContext(t), sub)
	first := mustAppend(t, s, ordersStream, eventstore.NoStream, event("a")).Events[0]
	r := await(t, pending)
	if r.err != nil {
		t.Fatalf("Next: got error %v, want the first event", r.err)
	}
	checkStored(t, "first event", r.msg, first)
}

func testSubscriptionSeesOnlyItsStream(t *testing.T, s eventstore.Store) {
	sub := subscribe(t, s, ordersStream, 0)
	pending := nextAsync(testContext(t), sub)
	mustAppend(t, s, paymentsStream, eventstore.Any, events("payment", 3)...)
	own := mustAppend(t, s, ordersStream, eventstore.Any, event("order")).Events[0]
	r := await(t, pending)
	if r.err != nil {
		t.Fatalf("Next: got error %v, want the stream's event", r.err)
	}
	checkStored(t, "event", r.msg, own)
}

// The switch-over from stored to live events is where a gap or a duplicate
// would hide: subscribers start from 0 at different moments while writers
// append, and each must see exactly 1..N.
func testSubscriptionSwitchesOverUnderConcurrentAppendsWithoutGapOrDuplicate(t *testing.T, s eventstore.Store) {
	const (
		switchWriters = 4
		perWriter     = 100
		total         = switchWriters * perWriter
		subscribers   = 3
	)
	ctx := testContext(t)
	var writing sync.WaitGroup
	writeErrs := make(chan error, switchWriters)
	for w := range switchWriters {
		writing.Go(func() {
			for i := range perWriter {
				if _, err := s.Append(ctx, ordersStream, eventstore.Any, []engine.Message{event(fmt.Sprintf("w%d-%d", w, i))}); err != nil {
					writeErrs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
			}
		})
	}

	got := make([][]engine.Message, subscribers)
	readErrs := make(chan error, subscribers)
	var reading sync.WaitGroup
	for n := range subscribers {
		// Subscriber n starts once about n/subscribers of the events exist.
		for threshold := uint64(n * total / subscribers); ; {
			v, err := s.Version(ctx, ordersStream)
			if err != nil {
				t.Fatalf("Version: got error %v, want nil", err)
			}
			if v >= threshold {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("waiting for %d events: got %d before the deadline", threshold, v)
			}
			runtime.Gosched() // let the writers run
		}
		sub := subscribe(t, s, ordersStream, 0)
		reading.Go(func() {
			for range total {
				m, err := sub.Next(ctx)
				if err != nil {
					readErrs <- fmt.Errorf("subscriber %d after %d events: %w", n, len(got[n]), err)
					return
				}
				got[n] = append(got[n], m)
			}
		})
	}
	writing.Wait()
	reading.Wait()
	close(writeErrs)
	close(readErrs)
	for err := range writeErrs {
		t.Fatal(err)
	}
	for err := range readErrs {
		t.Fatal(err)
	}
	stored := mustRead(t, s, ordersStream, 0, total+1)
	checkSequences(t, "stored", stored, 1, total)
	for n := range subscribers {
		checkSequences(t, fmt.Sprintf("subscriber %d", n), got[n], 1, total)
		for i, m := range got[n] {
			if m.ID != stored[i].ID || m.Position != stored[i].Position {
				t.Fatalf("subscriber %d event %d: got id %q position %d, want %q %d as stored",
					n, i, m.ID, m.Position, stored[i].ID, stored[i].Position)
			}
		}
	}
}

func testNextHonoursTheContext(t *testing.T, s eventstore.Store) {
	sub := subscribe(t, s, ordersStream, 0)

	ctx, cancel := context.WithCancel(t.Context())
	pending := nextAsync(ctx, sub)
	cancel()
	if r := await(t, pending); !errors.Is(r.err, context.Canceled) {
		t.Errorf("Next with a cancelled context: got %v, want context.Canceled", r.err)
	}

	deadline, stop := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer stop()
	if _, err := sub.Next(deadline); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next past its deadline: got %v, want context.DeadlineExceeded", err)
	}

	// The subscription still works after a Next gave up.
	want := mustAppend(t, s, ordersStream, eventstore.Any, event("a")).Events[0]
	checkStored(t, "event after cancelled calls", mustNext(t, sub), want)
}

func testClosingASubscriptionEndsItsNext(t *testing.T, s eventstore.Store) {
	sub := subscribe(t, s, ordersStream, 0)
	pending := nextAsync(testContext(t), sub)
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	if r := await(t, pending); !errors.Is(r.err, eventstore.ErrSubscriptionClosed) {
		t.Errorf("pending Next after Close: got %v, want ErrSubscriptionClosed", r.err)
	}
	mustAppend(t, s, ordersStream, eventstore.Any, event("a"))
	if _, err := sub.Next(testContext(t)); !errors.Is(err, eventstore.ErrSubscriptionClosed) {
		t.Errorf("Next after Close: got %v, want ErrSubscriptionClosed", err)
	}
	if err := sub.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	// The store is unaffected.
	checkSequences(t, "read", mustRead(t, s, ordersStream, 0, 10), 1, 1)
}
