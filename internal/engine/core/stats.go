package core

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics"
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

// refreshGauges keeps the gauges current until ctx ends: queue depths, the
// outbox's depth and oldest entry, the streams' sizes and the projections'
// and reactors' lag. It runs on a period, not per event, as most of them
// read the store.
func (e *Engine) refreshGauges(ctx context.Context) {
	if e.cfg.Metrics == nil {
		return
	}
	t := time.NewTicker(e.cfg.StatsInterval)
	defer t.Stop()
	var queues map[queueSeries]struct{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		queues = e.refreshQueueDepths(queues)
		e.refreshOutbox(ctx)
		e.refreshStreamSizes(ctx)
		e.refreshLag(ctx)
	}
}

// queueSeries names one eventsourcing_queue_depth series.
type queueSeries struct{ stream, subscriber string }

// refreshQueueDepths reports the queue of every route on each of its
// streams, and deletes the series of the queues it reported last pass
// (reported) that are gone: a stream removed, a handler edited or removed,
// also one removed while this pass read its figures. It returns the
// series it reported.
func (e *Engine) refreshQueueDepths(reported map[queueSeries]struct{}) map[queueSeries]struct{} {
	current := make(map[queueSeries]struct{}, len(reported))
	for _, name := range e.router.Names() {
		rs, ok := e.router.Stats(name)
		if !ok {
			continue
		}
		for s, ss := range rs.Streams {
			e.cfg.Metrics.SetQueueDepth(s, name, ss.Queued)
			current[queueSeries{stream: s, subscriber: name}] = struct{}{}
		}
	}
	for q := range reported {
		if _, ok := current[q]; !ok {
			e.cfg.Metrics.DeleteQueueDepth(q.stream, q.subscriber)
		}
	}
	return current
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

// refreshOutbox reports the outbox's depth and the age of its oldest entry.
// With an Appender (NATS) nothing waits in an outbox, so there is nothing
// to report.
func (e *Engine) refreshOutbox(ctx context.Context) {
	if e.cfg.Appender != nil {
		return
	}
	n := e.cfg.Outbox.Len()
	var age time.Duration
	if n > 0 {
		oldest, err := e.cfg.Outbox.Pending(ctx, 1)
		if err == nil && len(oldest) > 0 && !oldest[0].Message.Time.IsZero() {
			age = max(time.Since(oldest[0].Message.Time), 0)
		}
	}
	e.cfg.Metrics.SetOutbox(n, age)
}

// refreshStreamSizes reports how many events each stream holds: from its
// first retained sequence to its last, as sequences have no gaps.
func (e *Engine) refreshStreamSizes(ctx context.Context) {
	compactor, _ := e.cfg.Store.(eventstore.Compactor)
	for name := range *e.streams.Load() {
		last, err := e.cfg.Store.Version(ctx, name)
		if err != nil {
			continue // the next pass tries again
		}
		events := last
		if compactor != nil && last > 0 {
			first, err := compactor.First(ctx, name)
			if err != nil {
				continue
			}
			if first > 0 {
				events = last - first + 1
			}
		}
		e.mu.Lock()
		if _, ok := e.stream(name); ok { // not removed meanwhile: its series would come back
			e.cfg.Metrics.SetStreamEvents(name, events)
		}
		e.mu.Unlock()
	}
}

// refreshLag reports each running projection's and reactor's lag (a
// standby engine runs none: the leader reports them).
func (e *Engine) refreshLag(ctx context.Context) {
	e.mu.Lock()
	projections := slices.Collect(maps.Keys(e.projections))
	reactors := slices.Collect(maps.Keys(e.reactors))
	e.mu.Unlock()
	for _, name := range projections {
		ps, err := e.ProjectionStats(ctx, name)
		if err != nil {
			continue
		}
		e.mu.Lock()
		if _, ok := e.projections[name]; ok { // not removed meanwhile: its series would come back
			e.cfg.Metrics.SetLag(name, ps.Lag)
		}
		e.mu.Unlock()
	}
	for _, name := range reactors {
		rs, err := e.ReactorStats(ctx, name)
		if err != nil {
			continue
		}
		e.mu.Lock()
		if _, ok := e.reactors[name]; ok {
			e.cfg.Metrics.SetLag(ReactorHandlerName(name), rs.Lag)
		}
		e.mu.Unlock()
	}
}

// Metrics returns the engine's collectors (Config.Metrics), nil without.
func (e *Engine) Metrics() *metrics.Metrics { return e.cfg.Metrics }

// observeBatch is the processor's ObserveBatch: nil without metrics.
func observeBatch(m *metrics.Metrics) func(int, time.Duration) {
	if m == nil {
		return nil
	}
	return m.ObserveBatch
}
