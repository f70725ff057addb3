package brokertest

import (
	"reflect"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
)

// deliveryBehaviours cover what a subscriber receives and what the counters say.
var deliveryBehaviours = []behaviour{
	{"DeliversStreamInPublishOrder", testDeliversStreamInPublishOrder},
	{"FansOutEveryMessageToEverySubscriber", testFansOutEveryMessageToEverySubscriber},
	{"DeliversOnlyTheSubscribedStream", testDeliversOnlyTheSubscribedStream},
	{"PublishWithoutSubscribersSucceeds", testPublishWithoutSubscribersSucceeds},
	{"SubscriberGetsOnlyMessagesPublishedAfterSubscribe", testSubscriberGetsOnlyLaterMessages},
	{"DeliversMessageFieldsUnchanged", testDeliversMessageFieldsUnchanged},
	{"SubscribersCountsOpenSubscriptions", testSubscribersCountsOpenSubscriptions},
	{"LenCountsQueuedMessages", testLenCountsQueuedMessages},
}

func testDeliversStreamInPublishOrder(t *testing.T, b broker.Broker) {
	sub := subscribe(t, b, "orders", 16)
	publish(t, b, message("orders", 1))
	publish(t, b, messages("orders", 2, 5)...)
	publish(t, b, message("orders", 6))
	checkSequences(t, receive(t, sub, 6), "orders", 1, 6)
}

func testFansOutEveryMessageToEverySubscriber(t *testing.T, b broker.Broker) {
	subs := []broker.Subscription{
		subscribe(t, b, "orders", 8),
		subscribe(t, b, "orders", 8),
		subscribe(t, b, "orders", 8),
	}
	publish(t, b, messages("orders", 1, 5)...)
	for i, sub := range subs {
		t.Logf("subscriber %d", i)
		checkSequences(t, receive(t, sub, 5), "orders", 1, 5)
	}
}

func testDeliversOnlyTheSubscribedStream(t *testing.T, b broker.Broker) {
	a := subscribe(t, b, "a", 8)
	bsub := subscribe(t, b, "b", 8)
	// One batch that switches streams: each stream keeps its own order.
	publish(t, b, message("a", 1), message("b", 1), message("a", 2), message("c", 1), message("b", 2), message("a", 3))
	checkSequences(t, receive(t, a, 3), "a", 1, 3)
	checkSequences(t, receive(t, bsub, 2), "b", 1, 2)
	// A marker shows nothing else was queued behind the expected messages.
	publish(t, b, message("a", 4), message("b", 3))
	checkSequences(t, receive(t, a, 1), "a", 4, 4)
	checkSequences(t, receive(t, bsub, 1), "b", 3, 3)
}

func testPublishWithoutSubscribersSucceeds(t *testing.T, b broker.Broker) {
	publish(t, b, messages("nobody", 1, 100)...)
	publish(t, b)
	if got := b.Subscribers("nobody"); got != 0 {
		t.Fatalf("Subscribers(nobody) = %d, want 0", got)
	}
}

func testSubscriberGetsOnlyLaterMessages(t *testing.T, b broker.Broker) {
	early := subscribe(t, b, "orders", 8)
	publish(t, b, messages("orders", 1, 2)...)
	late := subscribe(t, b, "orders", 8)
	publish(t, b, message("orders", 3))
	checkSequences(t, receive(t, early, 3), "orders", 1, 3)
	checkSequences(t, receive(t, late, 1), "orders", 3, 3)
}

func testDeliversMessageFieldsUnchanged(t *testing.T, b broker.Broker) {
	sub := subscribe(t, b, "orders", 1)
	want := engine.Message{
		ID:            "01J0000000000000000000000",
		Name:          "OrderPlaced",
		Stream:        "orders",
		Sequence:      7,
		Position:      42,
		Time:          time.Date(2025, 3, 1, 12, 30, 0, 123456789, time.UTC),
		Headers:       map[string]string{"ce-source": "/shop", "ce-type": "OrderPlaced"},
		CorrelationID: "corr-1",
		CausationID:   "cause-1",
		ContentType:   "application/json",
		Payload:       []byte(`{"orderId":"o-1","total":12.5}`),
	}
	publish(t, b, want)
	got := receive(t, sub, 1)[0]
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("received %+v, want %+v", got, want)
	}
}

func testSubscribersCountsOpenSubscriptions(t *testing.T, b broker.Broker) {
	count := func(stream string, want int) {
		t.Helper()
		if got := b.Subscribers(stream); got != want {
			t.Fatalf("Subscribers(%q) = %d, want %d", stream, got, want)
		}
	}
	count("orders", 0)
	first := subscribe(t, b, "orders", 1)
	second := subscribe(t, b, "orders", 1)
	subscribe(t, b, "users", 1)
	count("orders", 2)
	count("users", 1)
	count("other", 0)

	if err := first.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	count("orders", 1)
	if err := first.Close(); err != nil {
		t.Fatalf("second Close() = %v, want nil", err)
	}
	count("orders", 1)
	if err := second.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	count("orders", 0)
	count("users", 1)
}

func testLenCountsQueuedMessages(t *testing.T, b broker.Broker) {
	sub := subscribe(t, b, "orders", 8)
	if got := sub.Len(); got != 0 {
		t.Fatalf("Len() before publishing = %d, want 0", got)
	}
	publish(t, b, messages("orders", 1, 3)...)
	enginetest.Eventually(t, "Len() to reach 3 after publishing 3 messages", func() bool { return sub.Len() == 3 })
	receive(t, sub, 1)
	if got := sub.Len(); got != 2 {
		t.Fatalf("Len() after receiving 1 of 3 = %d, want 2", got)
	}
	receive(t, sub, 2)
	if got := sub.Len(); got != 0 {
		t.Fatalf("Len() after receiving all = %d, want 0", got)
	}
}
