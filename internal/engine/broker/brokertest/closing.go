package brokertest

import (
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
)

// closeBehaviours cover closing a subscription and closing the broker.
var closeBehaviours = []behaviour{
	{"SubscriptionCloseClosesC", testSubscriptionCloseClosesC},
	{"BrokerCloseClosesEverySubscription", testBrokerCloseClosesEverySubscription},
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
	if err := sub.Err(); err != nil {
		t.Fatalf("Err() after Close = %v, want nil", err)
	}
	// The stream stays usable without the closed subscriber.
	publish(t, b, message("orders", 3))
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
		if err := sub.Err(); !errors.Is(err, broker.ErrClosed) {
			t.Fatalf("Err() after the broker closed = %v, want broker.ErrClosed", err)
		}
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
