package brokertest

import (
	"context"
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
)

// closeBehaviours cover closing a subscription and closing the broker.
var closeBehaviours = []behaviour{
	{"SubscriptionCloseClosesC", testSubscriptionCloseClosesC},
	{"SubscriptionCloseUnblocksOnlyItsPublish", testSubscriptionCloseUnblocksOnlyItsPublish},
	{"BrokerCloseClosesEverySubscription", testBrokerCloseClosesEverySubscription},
	{"BrokerCloseUnblocksWaitingPublisher", testBrokerCloseUnblocksWaitingPublisher},
	{"OperationsAfterBrokerCloseReturnErrClosed", testOperationsAfterBrokerCloseReturnErrClosed},
}

func testSubscriptionCloseClosesC(t *testing.T, b broker.Broker) {
	sub := subscribe(t, b, "orders", 4)
	publish(t, b, messages("orders", 1, 2)...)
	for i := range 2 {
		if err := sub.Close(); err != nil {
			t.Fatalf("Close() call %d = %v, want nil", i+1, err)
		}
	}
	if drained := awaitClosed(t, sub); len(drained) > 2 {
		t.Fatalf("drained %d messages after Close, want at most the 2 published", len(drained))
	}
	// The stream stays usable without the closed subscriber.
	publish(t, b, message("orders", 3))
}

func testSubscriptionCloseUnblocksOnlyItsPublish(t *testing.T, b broker.Broker) {
	stuck := subscribe(t, b, "orders", 1)
	other := subscribe(t, b, "orders", 8)
	marker := subscribe(t, b, "marker", 1)
	publish(t, b, message("orders", 1))

	// Once marker holds its message the publisher is past it and waiting on
	// stuck's full queue (or about to).
	result := publishAsync(t, t.Context(), b, message("marker", 1), message("orders", 2), message("orders", 3))
	enginetest.Eventually(t, "the publisher to reach the marker stream", func() bool { return marker.Len() == 1 })
	if err := awaitResult(t, closeAsync(stuck), "Subscription.Close with a publisher waiting on it"); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	if err := awaitResult(t, result, "Publish waiting on a closed subscription"); err != nil {
		t.Fatalf("Publish waiting on a subscription that closed = %v, want nil", err)
	}
	checkSequences(t, receive(t, other, 3), "orders", 1, 3)
	awaitClosed(t, stuck)
	if got := b.Subscribers("orders"); got != 1 {
		t.Fatalf("Subscribers(orders) after closing one of two = %d, want 1", got)
	}
}

func testBrokerCloseClosesEverySubscription(t *testing.T, b broker.Broker) {
	subs := []broker.Subscription{
		subscribe(t, b, "orders", 2),
		subscribe(t, b, "orders", 2),
		subscribe(t, b, "users", 2),
	}
	publish(t, b, message("orders", 1), message("users", 1))
	if err := b.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	for _, sub := range subs {
		awaitClosed(t, sub)
		// Closing a subscription of a closed broker is harmless.
		if err := sub.Close(); err != nil {
			t.Fatalf("Subscription.Close() after broker Close = %v, want nil", err)
		}
	}
	for _, stream := range []string{"orders", "users"} {
		if got := b.Subscribers(stream); got != 0 {
			t.Fatalf("Subscribers(%q) after Close = %d, want 0", stream, got)
		}
	}
}

func testBrokerCloseUnblocksWaitingPublisher(t *testing.T, b broker.Broker) {
	subscribe(t, b, "orders", 1)
	marker := subscribe(t, b, "marker", 1)
	publish(t, b, message("orders", 1))
	// context.Background: only Close can end this wait.
	result := publishAsync(t, context.Background(), b, message("marker", 1), message("orders", 2))
	enginetest.Eventually(t, "the publisher to reach the marker stream", func() bool { return marker.Len() == 1 })
	if err := awaitResult(t, closeAsync(b), "Broker.Close with a publisher waiting"); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	if err := awaitResult(t, result, "Publish waiting when the broker closed"); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish waiting when the broker closed = %v, want broker.ErrClosed", err)
	}
}

func testOperationsAfterBrokerCloseReturnErrClosed(t *testing.T, b broker.Broker) {
	if err := b.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close() = %v, want nil", err)
	}
	if err := b.Publish(t.Context(), message("orders", 1)); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want broker.ErrClosed", err)
	}
	sub, err := b.Subscribe("orders", 1)
	if !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Subscribe after Close = %v, want broker.ErrClosed", err)
	}
	if sub != nil {
		t.Fatalf("Subscribe after Close returned subscription %v, want nil", sub)
	}
}
