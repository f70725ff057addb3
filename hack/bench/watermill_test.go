package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

const watermillTopic = "events"

// BenchmarkWatermillThroughput measures one event published to a Watermill
// GoChannel and handled by a router with retry, deduplication and panic
// recovery, doing the same work as the engine's Append projection.
func BenchmarkWatermillThroughput(b *testing.B) {
	logger := watermill.NopLogger{}
	// BlockPublishUntilSubscriberAck gives the at-least-once hand-off the engine
	// has; with it one message is in flight at a time, so the buffer size does
	// not change the result (1000 is the value Watermill's own examples use).
	pubSub := gochannel.NewGoChannel(gochannel.Config{
		OutputChannelBuffer:            1000,
		BlockPublishUntilSubscriberAck: true,
	}, logger)
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		b.Fatalf("new router: %v", err)
	}
	router.AddMiddleware(newDeduplicator(b).Middleware, middleware.Retry{
		MaxRetries:      5,
		InitialInterval: 100 * time.Millisecond,
		MaxInterval:     time.Second,
		Multiplier:      2,
	}.Middleware, middleware.Recoverer)

	projection := newAppendProjection(b.N)
	router.AddConsumerHandler("append", watermillTopic, pubSub, func(msg *message.Message) error {
		return projection.apply(msg.Payload)
	})

	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(context.Background()) }()
	select {
	case <-router.Running():
	case err := <-runErr:
		b.Fatalf("router stopped before running: %v", err)
	}
	b.Cleanup(func() {
		if err := errors.Join(router.Close(), pubSub.Close(), <-runErr); err != nil {
			b.Errorf("close router: %v", err)
		}
	})

	// Messages are built before the clock starts, as the engine benchmark
	// builds its events: only the hand-off and handling are timed.
	msgs := make([]*message.Message, b.N)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), payload)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i, msg := range msgs {
		if err := pubSub.Publish(watermillTopic, msg); err != nil {
			b.Fatalf("publish %d: %v", i, err)
		}
	}
	projection.wait(b)
	b.StopTimer()
	reportEventsPerSecond(b, start)
}

// newDeduplicator returns Watermill's deduplicator with its in-memory expiring
// store and a 10-minute window, keyed by message UUID. The default key is an
// Adler-32 of the payload: with the same payload on every event it would drop
// all but the first, and even payloads that differ only in a counter collide
// (n=121 and n=202 hash alike). The engine dedupes by event ID, so keying by
// UUID is also the like-for-like choice.
func newDeduplicator(b *testing.B) *middleware.Deduplicator {
	store, err := middleware.NewMapExpiringKeyRepository(10 * time.Minute)
	if err != nil {
		b.Fatalf("new expiring key store: %v", err)
	}
	return &middleware.Deduplicator{
		KeyFactory: func(msg *message.Message) (string, error) { return msg.UUID, nil },
		Repository: store,
	}
}
