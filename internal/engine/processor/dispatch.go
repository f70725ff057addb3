package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// contentTypeJSON is the content type given to Value-only messages.
const contentTypeJSON = "application/json"

// streamBatch is one stream's share of a batch, in outbox order.
type streamBatch struct {
	stream    string
	events    []engine.Message
	positions []uint64
}

// pendingCopier is implemented by outboxes that copy pending entries into
// the caller's buffers, as outbox.Memory does: the processor reuses its
// buffers from batch to batch instead of allocating two per batch.
type pendingCopier interface {
	PendingInto(ctx context.Context, msgs []engine.Message, positions []uint64) (int, error)
}

// dispatchPending dispatches batches until the outbox holds less than a full
// batch. It returns the first batch's error; the failed entries stay pending.
func (p *Processor) dispatchPending(ctx context.Context) error {
	if len(p.msgs) != p.cfg.BatchSize {
		p.msgs = make([]engine.Message, p.cfg.BatchSize)
		p.positions = make([]uint64, p.cfg.BatchSize)
	}
	for {
		n, err := p.pending(ctx)
		if err != nil {
			err = fmt.Errorf("read pending outbox entries: %w", err)
			p.fail(ctx, err, "", 0)
			return err
		}
		if n == 0 {
			return nil
		}
		p.stats.batches.Add(1)
		err = p.observedDispatch(ctx, n)
		clear(p.msgs[:n]) // hold no payload past its batch
		if err != nil {
			return err
		}
		if n < p.cfg.BatchSize {
			return nil
		}
	}
}

// observedDispatch dispatches the first n entries in hand, timed when
// ObserveBatch is set.
func (p *Processor) observedDispatch(ctx context.Context, n int) error {
	if p.cfg.ObserveBatch == nil {
		return p.dispatchBatch(ctx, p.msgs[:n], p.positions[:n])
	}
	start := time.Now()
	err := p.dispatchBatch(ctx, p.msgs[:n], p.positions[:n])
	p.cfg.ObserveBatch(n, time.Since(start))
	return err
}

// pending fills p.msgs and p.positions with the oldest pending entries and
// says how many.
func (p *Processor) pending(ctx context.Context) (int, error) {
	if c, ok := p.cfg.Outbox.(pendingCopier); ok {
		return c.PendingInto(ctx, p.msgs, p.positions)
	}
	entries, err := p.cfg.Outbox.Pending(ctx, len(p.msgs))
	if err != nil {
		return 0, err
	}
	for i, e := range entries {
		p.msgs[i], p.positions[i] = e.Message, e.Position
	}
	return len(entries), nil
}

// dispatchBatch appends and publishes each stream's messages, then marks the
// entries of every stream that succeeded. A failing stream does not hold back
// the others; its entries stay pending and keep their order.
func (p *Processor) dispatchBatch(ctx context.Context, msgs []engine.Message, positions []uint64) error {
	var errs []error
	done := make([]uint64, 0, len(msgs))
	for _, b := range groupByStream(msgs, positions) {
		if err := p.dispatchStream(ctx, b); err != nil {
			p.fail(ctx, err, b.stream, len(b.events))
			errs = append(errs, err)
			continue
		}
		done = append(done, b.positions...)
	}
	if len(done) > 0 {
		if err := p.cfg.Outbox.MarkDispatched(ctx, done); err != nil {
			err = fmt.Errorf("mark %d outbox entries dispatched: %w", len(done), err)
			p.fail(ctx, err, "", len(done))
			errs = append(errs, err)
		} else {
			p.stats.dispatched.Add(uint64(len(done)))
		}
	}
	return errors.Join(errs...)
}

// dispatchStream appends one stream's events and publishes them as stored.
// Events the store already held come back as stored and are published again:
// after a crash between append and publish, that is how they reach live
// subscribers, who drop sequences they have already seen.
func (p *Processor) dispatchStream(ctx context.Context, b streamBatch) error {
	for i := range b.events {
		if err := encodeValue(&b.events[i]); err != nil {
			return fmt.Errorf("stream %q: %w", b.stream, err)
		}
	}
	size := appendSize
	if s, ok := p.cfg.Store.(appendSizer); ok {
		size = s.AppendSize()
	}
	for events := range slices.Chunk(b.events, size) {
		res, err := p.cfg.Store.Append(ctx, b.stream, eventstore.Any, events)
		if err != nil {
			return fmt.Errorf("append %d events to stream %q: %w", len(events), b.stream, err)
		}
		if p.cfg.Stored != nil {
			p.cfg.Stored(res.Events)
		}
		if err := p.cfg.Broker.Publish(ctx, res.Events...); err != nil {
			return fmt.Errorf("publish %d events of stream %q: %w", len(res.Events), b.stream, err)
		}
	}
	return nil
}

// appendSize is the most events one Append takes. The store returns a new
// slice of messages per call; kept under 32 KB it is a small allocation the
// runtime serves from memory it has just reused, likely still cached,
// where a large one comes cold from the heap and its first writes miss.
// Appends of a batch's parts in order store and publish what one would.
const appendSize = 128

// appendSizer is implemented by stores that want another size: a durable
// store commits (and fsyncs) once per Append, so it asks for a stream's
// whole share of a batch in one call.
type appendSizer interface {
	AppendSize() int
}

// encodeValue gives a message that carries only a decoded Value (as handler
// outputs may) the JSON encoding of that value as its Payload, since the
// store keeps bytes, and the content type application/json when it has none.
// Messages with a Payload are left as they are.
func encodeValue(m *engine.Message) error {
	if m.Payload != nil || m.Value == nil {
		return nil
	}
	payload, err := json.Marshal(m.Value)
	if err != nil {
		return fmt.Errorf("encode the value of event %q as json: %w", m.ID, err)
	}
	m.Payload = payload
	if m.ContentType == "" {
		m.ContentType = contentTypeJSON
	}
	return nil
}

// groupByStream splits a batch by stream, keeping outbox order within each
// stream and ordering streams by their first message. A batch of one stream
// (the usual case) is returned as it is, without a copy.
func groupByStream(msgs []engine.Message, positions []uint64) []streamBatch {
	if len(msgs) == 0 {
		return nil
	}
	first := msgs[0].Stream
	if !slices.ContainsFunc(msgs, func(m engine.Message) bool { return m.Stream != first }) {
		return []streamBatch{{stream: first, events: msgs, positions: positions}}
	}
	var batches []streamBatch
	index := make(map[string]int)
	for i, m := range msgs {
		j, ok := index[m.Stream]
		if !ok {
			j = len(batches)
			index[m.Stream] = j
			batches = append(batches, streamBatch{stream: m.Stream})
		}
		batches[j].events = append(batches[j].events, m)
		batches[j].positions = append(batches[j].positions, positions[i])
	}
	return batches
}

// fail counts and logs a failed step. A step cut short by the end of ctx is a
// shutdown, not a failure: it is retried by the drain.
func (p *Processor) fail(ctx context.Context, err error, stream string, count int) {
	if ctx.Err() != nil {
		p.cfg.Logger.Debug("outbox dispatch interrupted", "stream", stream, "count", count, "error", err)
		return
	}
	p.stats.fail(err)
	p.cfg.Logger.Error("outbox dispatch failed; will retry", "stream", stream, "count", count, "error", err)
}
