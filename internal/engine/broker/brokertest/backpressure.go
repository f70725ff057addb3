package brokertest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
)

// backpressureBehaviours cover full queues: Publish never waits; a
// subscriber whose queue is full is dropped as lagging, keeps what it had
// queued and gets nothing more.
var backpressureBehaviours = []behaviour{
	{"QueueHoldsCapacityMessagesThenLags", testQueueHoldsCapacityMessagesThenLags},
	{"PublishNeverWaitsForAFullQueue", testPublishNeverWaitsForAFullQueue},
	{"LaggedSubscriberCanSubscribeAgain", testLaggedSubscriberCanSubscribeAgain},
}

// awaitLagged drains sub until C closes and fails the test unless it closed
// because the subscriber fell behind.
func awaitLagged(t *testing.T, sub broker.Subscription) {
	t.Helper()
	if drained := awaitClosed(t, sub); len(drained) != 0 {
		t.Fatalf("drained %d more messages, want none", len(drained))
	}
	if err := sub.Err(); !errors.Is(err, broker.ErrLagged) {
		t.Fatalf("Err() after the queue overflowed = %v, want broker.ErrLagged", err)
	}
}

func testQueueHoldsCapacityMessagesThenLags(t *testing.T, b broker.Broker) {
	tests := []struct {
		capacity int
		holds    uint64
	}{
		{capacity: -1, holds: 1},
		{capacity: 0, holds: 1},
		{capacity: 1, holds: 1},
		{capacity: 3, holds: 3},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("capacity=%d", tc.capacity), func(t *testing.T) {
			stream := fmt.Sprintf("cap%d", tc.capacity)
			sub := subscribe(t, b, stream, tc.capacity)
			publish(t, b, messages(stream, 1, tc.holds)...)
			enginetest.Eventually(t, "the queue to fill", func() bool { return sub.Len() == int(tc.holds) })
			if err := sub.Err(); err != nil {
				t.Fatalf("Err() of a full queue nothing overflowed = %v, want nil", err)
			}
			if got := b.Subscribers(stream); got != 1 {
				t.Fatalf("Subscribers(%q) with a full queue = %d, want 1", stream, got)
			}

			// One message too many, then more: none of them is queued.
			publish(t, b, messages(stream, tc.holds+1, tc.holds+5)...)
			checkSequences(t, receive(t, sub, int(tc.holds)), stream, 1, tc.holds)
			awaitLagged(t, sub)
			if got := b.Subscribers(stream); got != 0 {
				t.Fatalf("Subscribers(%q) after its only subscriber lagged = %d, want 0", stream, got)
			}
		})
	}
}

func testPublishNeverWaitsForAFullQueue(t *testing.T, b broker.Broker) {
	const n = 100
	stuck := subscribe(t, b, "orders", 2)
	reader := subscribe(t, b, "orders", n)
	other := subscribe(t, b, "users", n)
	// context.Background: a Publish that waited on stuck would hang the
	// goroutine; awaitResult fails the test instead.
	result := publishAsync(t, context.Background(), b, append(messages("orders", 1, n), messages("users", 1, n)...)...)
	if err := awaitResult(t, result, "Publish with a subscriber that never receives"); err != nil {
		t.Fatalf("Publish with a subscriber that never receives = %v, want nil", err)
	}
	checkSequences(t, receive(t, reader, n), "orders", 1, n)
	checkSequences(t, receive(t, other, n), "users", 1, n)
	checkSequences(t, receive(t, stuck, 2), "orders", 1, 2)
	awaitLagged(t, stuck)
}

func testLaggedSubscriberCanSubscribeAgain(t *testing.T, b broker.Broker) {
	first := subscribe(t, b, "orders", 1)
	publish(t, b, messages("orders", 1, 2)...)
	checkSequences(t, receive(t, first, 1), "orders", 1, 1)
	awaitLagged(t, first)
	if err := first.Close(); err != nil {
		t.Fatalf("Close() of a lagged subscription = %v, want nil", err)
	}
	if err := first.Err(); !errors.Is(err, broker.ErrLagged) {
		t.Fatalf("Err() after closing a lagged subscription = %v, want it to stay broker.ErrLagged", err)
	}

	again := subscribe(t, b, "orders", 4)
	publish(t, b, messages("orders", 3, 6)...)
	checkSequences(t, receive(t, again, 4), "orders", 3, 6)
	if err := again.Err(); err != nil {
		t.Fatalf("Err() of the new subscription = %v, want nil", err)
	}
}
