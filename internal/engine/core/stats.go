package core

import (
	"context"
	"fmt"
	"time"

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
