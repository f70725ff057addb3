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

// Broker delivers messages to the subscribers of their stream.
//
// Each subscription has a bounded queue. Publish waits while a queue is full,
// for as long as its ctx allows, and never drops a message. Each subscriber
// sees one stream's messages in the order they were published. Delivery runs on
// the publisher's and the subscriber's goroutines: no goroutine per message.
type Broker interface {
	// Publish delivers msgs, in order, to every current subscriber of each
	// message's Stream. When ctx ends first it returns ctx's error; messages
	// already queued stay queued.
	Publish(ctx context.Context, msgs ...engine.Message) error
	// Subscribe starts a subscription to stream whose queue holds at most
	// capacity messages (capacity < 1 means 1).
	Subscribe(stream string, capacity int) (Subscription, error)
	// Subscribers returns how many open subscriptions stream has.
	Subscribers(stream string) int
	// Close closes every subscription and unblocks waiting publishers.
	Close() error
}

// Subscription is one subscriber's queue.
type Subscription interface {
	// C delivers the messages. It is closed when the subscription or the
	// broker is closed.
	C() <-chan engine.Message
	// Len is the number of messages queued and not yet received.
	Len() int
	// Close ends the subscription; a Publish waiting on its full queue moves
	// on. Closing twice is harmless.
	Close() error
}
