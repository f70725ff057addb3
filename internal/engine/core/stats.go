package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/processor"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// StreamStats is a stream's progress.
type StreamStats struct {
	// LastSequence is the sequence of the newest stored event.
	LastSequence uint64
	// Subscribers counts the projections consuming it live.
	Subscribers int
}

// StreamStats returns the named stream's progress.
func (e *Engine) StreamStats(ctx context.Context, name string) (StreamStats, error) {
	if _, ok := e.stream(name); !ok {
		return StreamStats{}, fmt.Errorf("%w: %q", ErrStreamNotFound, name)
	}
	v, err := e.cfg.Store.Version(ctx, name)
	if err != nil {
		return StreamStats{}, err
	}
	return StreamStats{LastSequence: v, Subscribers: e.cfg.Broker.Subscribers(name)}, nil
}

// ProjectionStats is a projection's progress.
type ProjectionStats struct {
	// Processed counts events applied or skipped (filtered, deduplicated).
	Processed uint64
	// DeadLettered counts events that failed for good.
	DeadLettered uint64
	// Lag is the number of events in its streams it has not settled yet.
	Lag uint64
	// Checkpoint is the last settled sequence per stream.
	Checkpoint readmodel.Checkpoint
	// Waiting says why the projection does not run (a missing stream or
	// pipeline); nil when it runs.
	Waiting error
	// Stalled holds the last delivery error per stream while delivery is
	// being retried (the store or outbox failing).
	Stalled map[string]string
}

// ProjectionStats returns the named projection's progress.
func (e *Engine) ProjectionStats(ctx context.Context, name string) (ProjectionStats, error) {
	e.mu.Lock()
	st, ok := e.projections[name]
	var waiting error
	if ok {
		waiting = st.waiting
	}
	e.mu.Unlock()
	if !ok {
		return ProjectionStats{}, fmt.Errorf("%w: %q", ErrProjectionNotFound, name)
	}
	ps := st.proj.Stats()
	versions := make(map[string]uint64, len(st.spec.Streams))
	for _, s := range st.spec.Streams {
		v, err := e.cfg.Store.Version(ctx, s)
		if err != nil {
			return ProjectionStats{}, err
		}
		versions[s] = v
	}
	out := ProjectionStats{
		Processed:    ps.Processed,
		DeadLettered: ps.DeadLettered,
		Lag:          ps.Lag(versions),
		Checkpoint:   ps.Checkpoint,
		Waiting:      waiting,
	}
	if rs, ok := e.router.Stats(name); ok {
		for s, ss := range rs.Streams {
			if ss.Err != "" {
				if out.Stalled == nil {
					out.Stalled = map[string]string{}
				}
				out.Stalled[s] = ss.Err
			}
		}
	}
	return out, nil
}

// Stats is the whole engine's state.
type Stats struct {
	Streams, Pipelines, Projections int
	// OutboxPending counts accepted events not yet stored and published.
	OutboxPending int
	Processor     processor.Stats
}

// Stats returns the engine's state.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{
		Streams:       len(*e.streams.Load()),
		Pipelines:     len(e.pipelines),
		Projections:   len(e.projections),
		OutboxPending: e.cfg.Outbox.Len(),
		Processor:     e.processor.Stats(),
	}
}

// Query returns the projection's read model as a JSON object; a projection
// that has applied nothing yet answers {}.
func (e *Engine) Query(ctx context.Context, projection string) ([]byte, error) {
	e.mu.Lock()
	_, ok := e.projections[projection]
	e.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrProjectionNotFound, projection)
	}
	doc, err := e.cfg.ReadModels.Document(ctx, projection)
	if errors.Is(err, readmodel.ErrNotFound) {
		return []byte("{}"), nil
	}
	return doc, err
}

// ReadStream returns up to limit stored events of a stream after the given
// sequence, with Value decoded by the stream's codecs. The dead-letter
// stream a stream names can be read too; its events decode with the codecs
// of the stream they came from.
func (e *Engine) ReadStream(ctx context.Context, name string, after uint64, limit int) ([]engine.Message, error) {
	if !e.readable(name) {
		return nil, fmt.Errorf("%w: %q", ErrStreamNotFound, name)
	}
	events, err := e.cfg.Store.Read(ctx, name, after, limit)
	if err != nil {
		return nil, err
	}
	for i := range events {
		source := events[i].Stream
		if orig := events[i].Header(engine.HeaderDeadLetterStream); orig != "" {
			source = orig
		}
		// Payloads were validated at ingest; one that no longer decodes
		// (the schema changed since) is returned with Value nil.
		if v, err := e.Decode(source, events[i].ContentType, events[i].Payload); err == nil {
			events[i].Value = v
		}
	}
	return events, nil
}

// readable reports whether name is a stream or some stream's dead-letter stream.
func (e *Engine) readable(name string) bool {
	streams := *e.streams.Load()
	if _, ok := streams[name]; ok {
		return true
	}
	for _, s := range streams {
		if s.spec.DeadLetterStream == name {
			return true
		}
	}
	return false
}

// refreshGauges keeps the queue-depth gauges current until ctx ends. It runs
// on a period, not per event.
func (e *Engine) refreshGauges(ctx context.Context) {
	if e.cfg.Metrics == nil {
		return
	}
	t := time.NewTicker(e.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, name := range e.router.Names() {
			rs, ok := e.router.Stats(name)
			if !ok {
				continue
			}
			for s, ss := range rs.Streams {
				e.cfg.Metrics.SetQueueDepth(s, name, ss.Queued)
			}
		}
	}
}
