package core

import (
	"context"
	"fmt"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/processor"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// StreamStats is a stream's progress.
type StreamStats struct {
	// LastSequence is the sequence of the newest stored event.
	LastSequence uint64
	// Subscribers counts the projections consuming it live.
	Subscribers int
	// EventsPerSecond is the rate of the events this process appended to
	// it (ingested, replied by reactors, dead-lettered) over the last
	// rate.Window.
	EventsPerSecond float64
}

// StreamStats returns the named stream's progress.
func (e *Engine) StreamStats(ctx context.Context, name string) (StreamStats, error) {
	s, ok := e.stream(name)
	if !ok {
		return StreamStats{}, fmt.Errorf("%w: %q", ErrStreamNotFound, name)
	}
	v, err := e.cfg.Store.Version(ctx, name)
	if err != nil {
		return StreamStats{}, err
	}
	return StreamStats{
		LastSequence:    v,
		Subscribers:     e.cfg.Broker.Subscribers(name),
		EventsPerSecond: s.appended.PerSecond(time.Now()),
	}, nil
}

// ProjectionStats is a projection's progress: of the read model queries
// read, and of the rebuild of a new one while there is one.
type ProjectionStats struct {
	// Processed counts events applied or skipped (filtered, deduplicated).
	Processed uint64
	// DeadLettered counts events that failed for good.
	DeadLettered uint64
	// Lag is the number of events in its streams it has not settled yet.
	Lag uint64
	// Checkpoint is the last settled sequence per stream.
	Checkpoint readmodel.Checkpoint
	// Waiting says why the projection's current spec does not run (a
	// missing stream or pipeline); nil when it runs.
	Waiting error
	// Stalled holds the last delivery error per stream while delivery is
	// being retried (the store or outbox failing).
	Stalled map[string]string
	// Rebuild is set while a changed spec's read model is being rebuilt
	// and queries read the previous one.
	Rebuild *RebuildStats
	// Standby says that another replica, the leader, runs the projection
	// (Config.Standby): only Lag is known here, from the checkpoint the
	// leader stored.
	Standby bool
}

// RebuildStats is how far a rebuild is: up to which sequence it has folded
// its streams, against their ends, summed over the streams. Events that
// retention removed before the rebuild started count as folded.
type RebuildStats struct {
	Applied, Total uint64
}

// ProjectionStats returns the named projection's progress.
func (e *Engine) ProjectionStats(ctx context.Context, name string) (ProjectionStats, error) {
	e.mu.Lock()
	st, ok := e.projections[name]
	var serving, rebuild runner
	if ok {
		serving = *st.serving
		if st.rebuild != nil {
			rebuild = *st.rebuild
		}
	}
	waiting := serving.waiting
	if rebuild.proj != nil {
		waiting = rebuild.waiting
	}
	recorded, standingBy := e.standby.projections[name]
	e.mu.Unlock()
	if standingBy {
		lag, err := e.storedLag(ctx, name, recorded.Streams)
		return ProjectionStats{Standby: true, Lag: lag}, err
	}
	if !ok {
		return ProjectionStats{}, fmt.Errorf("%w: %q", ErrProjectionNotFound, name)
	}
	ps := serving.proj.Stats()
	versions, err := e.streamVersions(ctx, serving.spec.Streams)
	if err != nil {
		return ProjectionStats{}, err
	}
	out := ProjectionStats{
		Processed:    ps.Processed,
		DeadLettered: ps.DeadLettered,
		Lag:          ps.Lag(versions),
		Checkpoint:   ps.Checkpoint,
		Waiting:      waiting,
	}
	e.addStalled(&out, serving.spec.Name)
	if rebuild.proj != nil {
		if out.Rebuild, err = e.rebuildStats(ctx, rebuild); err != nil {
			return ProjectionStats{}, err
		}
		e.addStalled(&out, rebuild.spec.Name)
	}
	return out, nil
}

// addStalled adds the delivery errors of the route named route to out,
// for the streams it has none for yet.
func (e *Engine) addStalled(out *ProjectionStats, route string) {
	rs, ok := e.router.Stats(route)
	if !ok {
		return
	}
	for s, ss := range rs.Streams {
		if _, seen := out.Stalled[s]; ss.Err != "" && !seen {
			if out.Stalled == nil {
				out.Stalled = map[string]string{}
			}
			out.Stalled[s] = ss.Err
		}
	}
}

func (e *Engine) rebuildStats(ctx context.Context, r runner) (*RebuildStats, error) {
	versions, err := e.streamVersions(ctx, r.spec.Streams)
	if err != nil {
		return nil, err
	}
	cp := r.proj.Checkpoint()
	var rs RebuildStats
	for s, v := range versions {
		rs.Total += v
		rs.Applied += min(cp[s], v)
	}
	return &rs, nil
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

// storedLag is the lag of the handler whose checkpoint is stored under
// name: what a standby engine can tell of a handler the leader runs.
func (e *Engine) storedLag(ctx context.Context, name string, streams []string) (uint64, error) {
	cp, err := e.cfg.ReadModels.Checkpoint(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("read the checkpoint of %q: %w", name, err)
	}
	versions, err := e.streamVersions(ctx, streams)
	if err != nil {
		return 0, err
	}
	return projection.Stats{Checkpoint: cp}.Lag(versions), nil
}
