package core

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// Appender stores accepted events itself, in place of the outbox and the
// processor: a shared store that every replica appends to (NATS), where
// the 202 follows the store's acknowledgement and the key conditions are
// checked by the store, not by this process's versions table.
type Appender interface {
	// AppendAccepted stores msgs, all of stream, when expect holds for the
	// version of their one key, and returns each as stored (or, for an ID
	// the stream holds, that earlier event). generated marks IDs made for
	// this call (nil: none). A condition that fails is a
	// *versions.ConflictError and stores nothing.
	AppendAccepted(ctx context.Context, stream string, msgs []engine.Message, generated []bool,
		expect versions.Expect) ([]engine.Message, error)
}

// feed publishes what the store appends, whoever appended it, to the
// broker: with an Appender no processor publishes, and the routers'
// consumers wait on the broker. One follower per stream, each started at
// the stream's end before any consumer of the stream can start (Run starts
// them before the router; ApplyStream before it wires the stream's
// projections and reactors): a consumer catches up from the store to a
// point at or past its follower's start, and the follower publishes
// everything after that, so no event is left for the next one to reveal.
type feed struct {
	ctx     context.Context // nil until Run starts the feed
	wg      sync.WaitGroup
	running map[string]context.CancelFunc
}

// startFeed starts a follower for every stream the engine has; mu is held.
func (e *Engine) startFeed(ctx context.Context) {
	e.feed.ctx = ctx
	e.feed.running = map[string]context.CancelFunc{}
	for name := range *e.streams.Load() {
		e.follow(name)
	}
}

// follow starts the stream's follower unless it runs or the feed has not
// started; mu is held. The subscription is made before it returns.
func (e *Engine) follow(stream string) {
	if e.feed.ctx == nil || e.feed.running[stream] != nil {
		return
	}
	ctx, stop := context.WithCancel(e.feed.ctx)
	e.feed.running[stream] = stop
	var sub eventstore.Subscription
	from, err := e.cfg.Store.Version(ctx, stream)
	if err == nil {
		sub, err = e.cfg.Store.Subscribe(ctx, stream, from)
	}
	if err != nil {
		e.cfg.Logger.Warn("following the stream for the broker failed; again shortly", "stream", stream, "error", err)
	}
	e.feed.wg.Go(func() { e.publishFrom(ctx, stream, sub, from) })
}

// unfollow stops the stream's follower; mu is held.
func (e *Engine) unfollow(stream string) {
	if stop := e.feed.running[stream]; stop != nil {
		stop()
		delete(e.feed.running, stream)
	}
}

// publishFrom publishes the stream's events after from to the broker until
// ctx ends, subscribing again after a failure from the last one it
// published, so a failure leaves no gap either.
func (e *Engine) publishFrom(ctx context.Context, stream string, sub eventstore.Subscription, from uint64) {
	wait := &backoff.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}
	for ctx.Err() == nil {
		if sub == nil {
			var err error
			if sub, err = e.cfg.Store.Subscribe(ctx, stream, from); err != nil {
				if wait.Wait(ctx) != nil {
					return
				}
				continue
			}
		}
		err := e.publishAll(ctx, sub, &from)
		_ = sub.Close()
		sub = nil
		if ctx.Err() != nil {
			return
		}
		e.cfg.Logger.Warn("following the stream for the broker failed; again shortly", "stream", stream, "error", err)
		if wait.Wait(ctx) != nil {
			return
		}
	}
}

func (e *Engine) publishAll(ctx context.Context, sub eventstore.Subscription, last *uint64) error {
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		if err := e.cfg.Broker.Publish(ctx, m); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		*last = m.Sequence
	}
}
