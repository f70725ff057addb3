// Package processor moves accepted messages from the outbox to the event store
// and the broker: it appends each stream's messages, publishes what was
// stored, and only then marks the entries dispatched.
//
// A crash (or failure) between those steps loses nothing and stores nothing
// twice: the entries stay in the outbox, the retried Append is idempotent by
// event ID and reports the events already stored, and those are published
// again. Subscribers may therefore see a sequence twice and drop the repeat;
// they never miss one.
//
// A message with a Value and no Payload (a handler's output) is stored as
// the JSON encoding of its Value, with content type application/json unless
// it names one; the store keeps bytes, not values.
package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
)

// Processor dispatches the outbox. Run it on one goroutine (on the leader
// only): two processors over one outbox would each publish every event.
type Processor struct {
	cfg   Config
	stats counters
	// msgs and positions hold the batch in hand; only Run's goroutine
	// touches them.
	msgs      []engine.Message
	positions []uint64
}

// New returns a Processor for cfg after filling its defaults.
func New(cfg Config) (*Processor, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Processor{cfg: cfg}, nil
}

// Stats returns what the processor has done so far. It is safe to call while
// Run runs.
func (p *Processor) Stats() Stats {
	return p.stats.snapshot()
}

// Run dispatches the outbox whenever it signals an enqueue and on every
// PollingInterval, until ctx ends. A failed step is logged, counted and
// retried after a backoff (PollingInterval, doubling up to ten times that);
// Run never gives up on a message. When ctx ends, Run drains what is pending
// for up to DrainTimeout and returns nil, or the error that stopped the drain.
func (p *Processor) Run(ctx context.Context) error {
	ticker := time.NewTicker(p.cfg.PollingInterval)
	defer ticker.Stop()
	waits := p.newBackoff()
	for ctx.Err() == nil {
		if err := p.dispatchPending(ctx); err != nil {
			// A signal does not cut the wait short: under load it would
			// turn the backoff into a busy retry loop.
			_ = waits.Wait(ctx) // ctx's end is seen by the loop
			continue
		}
		waits.Reset()
		select {
		case <-ctx.Done():
		case <-p.cfg.Outbox.Signal():
			p.waitForBatch(ctx)
		case <-ticker.C:
		}
	}
	return p.drain(ctx)
}

// waitForBatch waits BatchDelay for more entries unless a full batch is
// already pending. Sleeping, not polling the outbox: the point is to leave
// the CPU to ingest.
func (p *Processor) waitForBatch(ctx context.Context) {
	if p.cfg.BatchDelay <= 0 || p.cfg.Outbox.Len() >= p.cfg.BatchSize {
		return
	}
	_ = backoff.Sleep(ctx, p.cfg.BatchDelay) // ctx's end is seen by the loop
}

// drain dispatches what is pending after ctx ended, on a context that keeps
// ctx's values but not its cancellation, bounded by DrainTimeout.
func (p *Processor) drain(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DrainTimeout)
	defer cancel()
	waits := p.newBackoff()
	for {
		err := p.dispatchPending(ctx)
		if err == nil {
			return nil
		}
		if waits.Wait(ctx) != nil {
			n := p.cfg.Outbox.Len()
			p.cfg.Logger.Error("outbox processor stopped before the outbox was drained",
				"pending", n, "drainTimeout", p.cfg.DrainTimeout, "error", err)
			return fmt.Errorf("drain outbox (%d entries left): %w", n, err)
		}
	}
}

// newBackoff returns the waits after failed dispatches: PollingInterval,
// doubling up to maxBackoffPolls times it.
func (p *Processor) newBackoff() backoff.Backoff {
	return backoff.Backoff{Initial: p.cfg.PollingInterval, Max: maxBackoffPolls * p.cfg.PollingInterval}
}
