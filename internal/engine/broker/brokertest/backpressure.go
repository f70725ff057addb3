package brokertest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
)

// backpressureBehaviours cover full queues: Publish waits, bounded by its ctx,
// and never drops a message.
var backpressureBehaviours = []behaviour{
	{"QueueHoldsCapacityMessages", testQueueHoldsCapacityMessages},
	{"PublishOnFullQueueReturnsCtxErrorAndKeepsQueued", testPublishOnFullQueueReturnsCtxErrorAndKeepsQueued},
	{"PublishResumesWhenSubscriberReceives", testPublishResumesWhenSubscriberReceives},
	{"PublishOnOneStreamDoesNotWaitForAnother", testPublishOnOneStreamDoesNotWaitForAnother},
}

func testQueueHoldsCapacityMessages(t *testing.T, b broker.Broker) {
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

			ctx, cancel := context.WithTimeout(t.Context(), blockedFor)
			defer cancel()
			err := b.Publish(ctx, message(stream, tc.holds+1))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Publish to a full queue = %v, want context.DeadlineExceeded", err)
			}
			if got := sub.Len(); got != int(tc.holds) {
				t.Fatalf("Len() of full queue = %d, want %d", got, tc.holds)
			}
			checkSequences(t, receive(t, sub, int(tc.holds)), stream, 1, tc.holds)
			if got := sub.Len(); got != 0 {
				t.Fatalf("Len() after draining = %d, want 0: the timed-out message was queued", got)
			}
		})
	}
}

func testPublishOnFullQueueReturnsCtxErrorAndKeepsQueued(t *testing.T, b broker.Broker) {
	sub := subscribe(t, b, "orders", 3)
	ctx, cancel := context.WithTimeout(t.Context(), blockedFor)
	defer cancel()
	// The batch is longer than the queue: the first three fit, the fourth waits
	// until ctx ends.
	err := b.Publish(ctx, messages("orders", 1, 5)...)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish(5 messages) into a queue of 3 = %v, want context.DeadlineExceeded", err)
	}
	checkSequences(t, receive(t, sub, 3), "orders", 1, 3)
	// The publisher retries what was not delivered; the subscriber sees no gap.
	publish(t, b, messages("orders", 4, 5)...)
	checkSequences(t, receive(t, sub, 2), "orders", 4, 5)
}

func testPublishResumesWhenSubscriberReceives(t *testing.T, b broker.Broker) {
	sub := subscribe(t, b, "orders", 2)
	result := publishAsync(t, t.Context(), b, messages("orders", 1, 6)...)
	enginetest.Eventually(t, "the publisher to fill the queue of 2", func() bool { return sub.Len() == 2 })
	// The queue is full and four messages remain: Publish cannot have succeeded.
	select {
	case err := <-result:
		t.Fatalf("Publish of 6 messages into a full queue of 2 returned %v before anything was received, want it to wait", err)
	default:
	}
	checkSequences(t, receive(t, sub, 6), "orders", 1, 6)
	if err := awaitResult(t, result, "Publish"); err != nil {
		t.Fatalf("Publish after the subscriber received = %v, want nil", err)
	}
}

func testPublishOnOneStreamDoesNotWaitForAnother(t *testing.T, b broker.Broker) {
	full := subscribe(t, b, "full", 1)
	marker := subscribe(t, b, "marker", 1)
	free := subscribe(t, b, "free", 1)
	publish(t, b, message("full", 1))
	// Deferred calls run before cleanups: if streams do block each other, the
	// free publish below is released once this ends, and the test can finish.
	blockedCtx, unblock := context.WithCancel(t.Context())
	defer unblock()
	// Once marker holds its message the publisher is past it and waiting on "full".
	blocked := publishAsync(t, blockedCtx, b, message("marker", 1), message("full", 2))
	enginetest.Eventually(t, "the publisher to reach the marker stream", func() bool { return marker.Len() == 1 })

	// On its own goroutine: a broker that wrongly serialises all streams may
	// wait on a lock, deaf to ctx.
	freeResult := publishAsync(t, t.Context(), b, message("free", 1))
	if err := awaitResult(t, freeResult, "Publish on a free stream while another stream's publisher waits"); err != nil {
		t.Fatalf("Publish on a free stream = %v, want nil", err)
	}
	checkSequences(t, receive(t, free, 1), "free", 1, 1)

	checkSequences(t, receive(t, full, 2), "full", 1, 2)
	if err := awaitResult(t, blocked, "Publish on the full stream"); err != nil {
		t.Fatalf("Publish on the full stream = %v, want nil", err)
	}
}
