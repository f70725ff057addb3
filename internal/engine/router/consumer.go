package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// Pauses between attempts when delivery cannot go on (the store cannot be
// read, the outbox is full, a dead-letter could not be written).
const (
	minPause = 50 * time.Millisecond
	maxPause = 5 * time.Second
)

// newPauses returns the pauses of one consumer's retries.
func newPauses() backoff.Backoff {
	return backoff.Backoff{Initial: minPause, Max: maxPause}
}

var errSubscriptionEnded = errors.New("broker subscription ended")

// consumer feeds one stream of one route to the route's handler.
type consumer struct {
	rt     *running
	stream string

	// What the consumer uses of the router's Config, copied when it is built.
	broker    broker.Broker
	store     eventstore.Store
	outbox    Enqueuer
	log       *slog.Logger
	readBatch int

	// pos is the sequence of the last settled event; only run's goroutine
	// writes it, stats reads it.
	pos     atomic.Uint64
	started bool // pos holds a real position (Start was called)
	sub     atomic.Pointer[broker.Subscription]
	// lags counts the times the broker dropped the subscription because
	// its queue was full.
	lags atomic.Uint64

	errMu   sync.Mutex
	lastErr string
}

func newConsumer(rt *running, stream string, cfg Config) *consumer {
	return &consumer{
		rt:        rt,
		stream:    stream,
		broker:    cfg.Broker,
		store:     cfg.Store,
		outbox:    cfg.Outbox,
		log:       cfg.Logger,
		readBatch: cfg.ReadBatch,
	}
}

// run consumes until ctx ends, starting over after a failure with a pause.
func (c *consumer) run(ctx context.Context) {
	pauses := newPauses()
	for {
		err := c.consume(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, broker.ErrLagged) {
			// Not a failure: the publisher moved on rather than wait for
			// this route. Subscribe again and read what was missed from
			// the store.
			c.lags.Add(1)
			c.log.Debug("route fell behind its queue; catching up from the store",
				"route", c.rt.route.Name, "stream", c.stream, "after", c.pos.Load())
			continue
		}
		c.setErr(err)
		pause := pauses.Next()
		c.log.Error("route stopped consuming; retrying",
			"route", c.rt.route.Name, "stream", c.stream, "after", c.pos.Load(), "error", err, "retryIn", pause)
		if backoff.Sleep(ctx, pause) != nil {
			return
		}
	}
}

// consume subscribes first and reads the store second, so every event is in
// at least one of the two; the sequence check drops what is in both. It
// returns broker.ErrLagged when the broker dropped the subscription because
// its queue was full, after handling what was queued.
func (c *consumer) consume(ctx context.Context) error {
	sub, err := c.broker.Subscribe(c.stream, capacityOf(c.rt.route, c.stream))
	if err != nil {
		return fmt.Errorf("subscribe to stream %q: %w", c.stream, err)
	}
	c.sub.Store(&sub)
	defer func() {
		c.sub.Store(nil)
		_ = sub.Close()
	}()

	if !c.started {
		pos, err := c.startPosition(ctx)
		if err != nil {
			return err
		}
		c.pos.Store(pos)
		c.started = true
	}
	if err := c.catchUp(ctx, math.MaxUint64); err != nil {
		return err
	}
	c.setErr(nil)
	for {
		msg, ok, err := receive(ctx, sub.C())
		if err != nil {
			return err
		}
		if !ok {
			if err := sub.Err(); errors.Is(err, broker.ErrLagged) {
				return err
			}
			return errSubscriptionEnded
		}
		pos := c.pos.Load()
		if msg.Sequence <= pos {
			continue // seen during catch-up, or a redelivery
		}
		if msg.Sequence > pos+1 {
			// Published before we subscribed, or lost to a restart: the
			// store has everything in between.
			if err := c.catchUp(ctx, msg.Sequence-1); err != nil {
				return err
			}
		}
		if msg.Sequence == c.pos.Load()+1 {
			if err := c.deliver(ctx, msg); err != nil {
				return err
			}
		}
	}
}

// receive takes the next message from ch, or returns ctx's error. While the
// queue holds messages it takes them without a select on ctx, which costs
// more than the rest of the hand-off.
func receive(ctx context.Context, ch <-chan engine.Message) (engine.Message, bool, error) {
	if err := ctx.Err(); err != nil {
		return engine.Message{}, false, err
	}
	select {
	case msg, ok := <-ch:
		return msg, ok, nil
	default:
	}
	select {
	case <-ctx.Done():
		return engine.Message{}, false, ctx.Err()
	case msg, ok := <-ch:
		return msg, ok, nil
	}
}

func (c *consumer) startPosition(ctx context.Context) (uint64, error) {
	if start := c.rt.route.Start; start != nil {
		pos, err := start(ctx, c.stream)
		if err != nil {
			return 0, fmt.Errorf("find start of stream %q: %w", c.stream, err)
		}
		return pos, nil
	}
	v, err := c.store.Version(ctx, c.stream)
	if err != nil {
		return 0, fmt.Errorf("read version of stream %q: %w", c.stream, err)
	}
	return v, nil
}

// catchUp delivers stored events after the current position up to and
// including sequence upTo.
func (c *consumer) catchUp(ctx context.Context, upTo uint64) error {
	for {
		pos := c.pos.Load()
		if pos >= upTo {
			return nil
		}
		events, err := c.store.Read(ctx, c.stream, pos, c.readBatch)
		if err != nil {
			return fmt.Errorf("read stream %q after %d: %w", c.stream, pos, err)
		}
		for _, ev := range events {
			if ev.Sequence > upTo {
				return nil
			}
			if err := c.deliver(ctx, ev); err != nil {
				return err
			}
		}
		if len(events) < c.readBatch {
			return nil
		}
	}
}

// deliver hands msg to the route until it is settled: handled (and its
// outputs in the outbox), skipped or dead-lettered. A failure that settles
// nothing (the dead-letter could not be written, the outbox is full) is
// retried after a pause, never skipped, so the stream's order holds. Outputs
// of a successful Handle are kept and only their Enqueue is retried: handling
// again could be skipped (already applied) and lose them. It returns only
// ctx's error, and hands nothing more to the handler once ctx has ended.
func (c *consumer) deliver(ctx context.Context, msg engine.Message) error {
	pauses := newPauses()
	var outputs []engine.Message
	handled, retried := false, false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if !handled {
			outputs, err = c.handle(ctx, msg)
			handled = err == nil
		}
		if handled && len(outputs) > 0 {
			if err = c.outbox.Enqueue(ctx, outputs); err == nil {
				outputs = nil
			}
		}
		if err == nil {
			c.pos.Store(msg.Sequence)
			if retried {
				c.setErr(nil)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.setErr(err)
		pause := pauses.Next()
		c.log.Error("event not settled; trying again",
			"route", c.rt.route.Name, "stream", c.stream, "sequence", msg.Sequence, "id", msg.ID,
			"error", err, "retryIn", pause)
		if backoff.Sleep(ctx, pause) != nil {
			return ctx.Err()
		}
		retried = true
	}
}

// handle runs the route's current chain once and settles a skipped or
// dead-lettered outcome. It returns the handler's outputs, ready for the
// outbox. The route's lock covers the handler and Settle, as a projection's
// Handle and Settle share state.
func (c *consumer) handle(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
	route := c.rt.current.Load()
	c.rt.handleMu.Lock()
	defer c.rt.handleMu.Unlock()
	out, err := route.Handler.Handle(ctx, msg)

	var outcome Outcome
	switch {
	case err == nil:
		if len(out) == 0 {
			return nil, nil
		}
		return causedBy(route.Name, msg, out), nil
	case errors.Is(err, engine.ErrSkip):
		outcome = Skipped
	case errors.Is(err, engine.ErrDeadLettered):
		outcome = DeadLettered
	default:
		return nil, err
	}
	if route.Settle == nil {
		return nil, nil
	}
	return nil, route.Settle(ctx, msg, outcome)
}

func (c *consumer) setErr(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if err == nil {
		c.lastErr = ""
		return
	}
	c.lastErr = err.Error()
}

func (c *consumer) stats() StreamStats {
	st := StreamStats{Delivered: c.pos.Load(), Lags: c.lags.Load()}
	if sub := c.sub.Load(); sub != nil {
		st.Queued = (*sub).Len()
	}
	c.errMu.Lock()
	st.Err = c.lastErr
	c.errMu.Unlock()
	return st
}
