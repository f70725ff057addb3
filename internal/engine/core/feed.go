package core

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
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

// feedStreams publishes what the store appends, whoever appended it, to
// the broker, one follower per stream, until ctx ends: with an Appender
// no processor publishes, and the routers' consumers wait on the broker.
// A follower starts at the stream's end: consumers read what came before
// from the store, and read a gap back, so a late start loses nothing.
func (e *Engine) feedStreams(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[string]context.CancelFunc{}
	defer func() {
		for _, stop := range running {
			stop()
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		streams := *e.streams.Load()
		for name := range streams {
			if _, ok := running[name]; !ok {
				fctx, stop := context.WithCancel(ctx)
				running[name] = stop
				wg.Go(func() { e.follow(fctx, name) })
			}
		}
		for name, stop := range running {
			if _, ok := streams[name]; !ok {
				stop()
				delete(running, name)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// follow publishes one stream's appends to the broker, subscribing again
// after a failure.
func (e *Engine) follow(ctx context.Context, stream string) {
	wait := &backoff.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}
	for ctx.Err() == nil {
		err := e.followOnce(ctx, stream)
		if ctx.Err() != nil {
			return
		}
		e.cfg.Logger.Warn("following the stream for the broker failed; again shortly", "stream", stream, "error", err)
		if wait.Wait(ctx) != nil {
			return
		}
	}
}

func (e *Engine) followOnce(ctx context.Context, stream string) error {
	from, err := e.cfg.Store.Version(ctx, stream)
	if err != nil {
		return err
	}
	sub, err := e.cfg.Store.Subscribe(ctx, stream, from)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Close() }()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		if err := e.cfg.Broker.Publish(ctx, m); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
}
