// Package broker is the engine's pub/sub: it carries each stream's stored
// events, live, to the subscribers of that stream.
package broker

import (
	"context"
	"errors"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// ErrClosed is returned by Publish and Subscribe after Close.
var ErrClosed = errors.New("broker closed")

// ErrLagged is a subscription's Err after the broker dropped it for falling
// behind: a message found its queue full. Its subscriber reads what it missed
// from the event store and subscribes again.
var ErrLagged = errors.New("subscriber fell behind its queue")

// Broker delivers messages to the subscribers of their stream.
//
// Each subscription has a bounded queue. Publish never waits for a
// subscriber: a message that finds a queue full ends that subscription
// instead (its Err is ErrLagged), so a subscriber that stops reading holds up
// neither the publisher nor the other subscribers, and holds no more than its
// queue. Each subscriber sees one stream's messages in the order they were
// published, with no gap until its subscription ends. Delivery runs on the
// publisher's and the subscriber's goroutines: no goroutine per message.
type Broker interface {
	// Publish delivers msgs, in order, to every current subscriber of each
	// message's Stream, and ends the subscriptions whose queue is full.
	// ctx bounds a backend that does I/O.
	Publish(ctx context.Context, msgs ...engine.Message) error
	// Subscribe starts a subscription to stream whose queue holds at most
	// capacity messages (capacity < 1 means 1).
	Subscribe(stream string, capacity int) (Subscription, error)
	// Subscribers returns how many open subscriptions stream has.
	Subscribers(stream string) int
	// Close closes every subscription.
	Close() error
}

// Subscription is one subscriber's queue.
type Subscription interface {
	// C delivers the messages. It is closed when the subscription ends
	// (Close, the broker's Close, or the subscriber falling behind); the
	// messages queued before that can still be received.
	C() <-chan engine.Message
	// Err says why C was closed: ErrLagged when the subscriber fell behind,
	// ErrClosed when the broker closed, nil after Close or while open.
	Err() error
	// Len is the number of messages queued and not yet received.
	Len() int
	// Close ends the subscription. Closing twice is harmless.
	Close() error
}
