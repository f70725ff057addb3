package core

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// Retention bounds what the event store keeps of a stream. Run enforces it
// every Config.CompactionInterval by compacting the stream (see
// eventstore.Compactor) when the store can; with a store that cannot, it is
// ignored with one warning per stream. The zero value keeps everything.
//
// The rule: compaction never removes an event that a projection reading the
// stream has not applied yet. Each projection the engine has registered for
// the stream, running, catching up or waiting (for a stream or pipeline),
// holds back every event after its checkpoint for the stream (all of them
// when it has none), so a slow or stalled projection delays retention rather
// than being skipped past. A projection created later with startFrom
// Beginning starts at the first retained event. The stream's last event is
// always kept, and sequences are never reused.
type Retention struct {
	// MaxEvents keeps at most this many of the newest events (0: no bound).
	MaxEvents uint64
	// MaxAge drops events whose time is older than this (0: no bound).
	MaxAge time.Duration
}

// bounded reports whether r removes anything ever.
func (r Retention) bounded() bool { return r.MaxEvents > 0 || r.MaxAge > 0 }

// agePage is how many events one Read of the MaxAge scan takes.
const agePage = 256

// compactLoop enforces the streams' retention every CompactionInterval until
// ctx ends. The first pass waits one interval: after a restart, controllers
// re-apply the projections first, so their checkpoints hold retention back.
func (e *Engine) compactLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.CompactionInterval)
	defer t.Stop()
	warned := make(map[string]bool)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.compactStreams(ctx, warned)
	}
}

// compactStreams runs one compaction pass over the streams with a
// retention, in name order. warned remembers the streams already warned
// about a store that cannot compact.
func (e *Engine) compactStreams(ctx context.Context, warned map[string]bool) {
	streams := *e.streams.Load()
	names := make([]string, 0, len(streams))
	for name, s := range streams {
		if s.spec.Retention.bounded() {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	c, ok := e.cfg.Store.(eventstore.Compactor)
	for _, name := range names {
		if ctx.Err() != nil {
			return
		}
		if !ok {
			if !warned[name] {
				warned[name] = true
				e.cfg.Logger.Warn("stream retention ignored: the event store cannot compact", "stream", name)
			}
			continue
		}
		if err := e.compactStream(ctx, c, name, streams[name].spec.Retention); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Error("stream compaction failed; trying again next pass", "stream", name, "error", err)
		}
	}
}

// compactStream removes the stream's events that its retention lets go and
// no projection still needs.
func (e *Engine) compactStream(ctx context.Context, c eventstore.Compactor, name string, r Retention) error {
	// The floor first: checkpoints only grow, so one read before the store
	// is never above what the projections need when Compact runs.
	floor, holder, err := e.retentionFloor(ctx, name)
	if err != nil {
		return err
	}
	version, err := e.cfg.Store.Version(ctx, name)
	if err != nil {
		return err
	}
	first, err := c.First(ctx, name)
	if err != nil {
		return err
	}
	// Everything below limit may go: the last event stays, and so does
	// every event a projection has not applied.
	limit := min(version, floor)
	if limit <= first {
		return nil
	}
	var cut uint64
	if r.MaxEvents > 0 && version >= r.MaxEvents {
		cut = version - r.MaxEvents + 1
	}
	if r.MaxAge > 0 && cut < limit {
		byAge, err := e.firstNewer(ctx, name, max(first, cut), limit, time.Now().Add(-r.MaxAge))
		if err != nil {
			return err
		}
		cut = max(cut, byAge)
	}
	if holder != "" && cut > limit {
		e.cfg.Logger.Debug("stream retention held back by a projection that has not applied the events",
			"stream", name, "projection", holder, "wouldKeepFrom", cut, "keepsFrom", limit)
	}
	cut = min(cut, limit)
	if cut <= first {
		return nil
	}
	removed, err := c.Compact(ctx, name, cut)
	if removed > 0 {
		e.cfg.Logger.Info("stream compacted", "stream", name, "removed", removed, "firstRetained", cut)
	}
	return err
}

// retentionFloor returns the smallest sequence of stream that a projection
// reading it has not applied (its checkpoint + 1, so 1 without a
// checkpoint) and that projection's name; math.MaxUint64 and "" when no
// projection reads the stream. Registered projections count with their
// live checkpoint, or the stored one when the store can list them and it
// is lower; a projection with a stored checkpoint that the engine
// has not registered (again, after a restart: its controller has not
// re-applied it yet) counts with the stored one, when the store can list
// them, so it is not compacted past before it is back.
func (e *Engine) retentionFloor(ctx context.Context, stream string) (uint64, string, error) {
	var stored map[string]readmodel.Checkpoint
	if l, ok := e.cfg.ReadModels.(readmodel.CheckpointLister); ok {
		var err error
		if stored, err = l.Checkpoints(ctx); err != nil {
			return 0, "", fmt.Errorf("list the projections' checkpoints: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	floor, holder := uint64(math.MaxUint64), ""
	hold := func(name string, next uint64) {
		if next < floor || (next == floor && name < holder) {
			floor, holder = next, name
		}
	}
	registered := make(map[string]bool, len(e.projections))
	for _, st := range e.projections {
		// A read model being rebuilt holds back what it has to fold, and
		// the one it replaces what it follows.
		for _, r := range st.runners() {
			name := r.spec.Name
			registered[name] = true
			if !slices.Contains(r.spec.Streams, stream) {
				continue
			}
			applied := r.proj.Checkpoint()[stream]
			if stored != nil {
				// A store may commit behind the projection (the disk
				// store's read models do): a restart resumes from the
				// stored checkpoint, so nothing after it may go.
				applied = min(applied, stored[name][stream])
			}
			hold(name, applied+1)
		}
	}
	for name, cp := range stored {
		if registered[name] {
			continue // its live checkpoint and streams are the truth
		}
		if seq, ok := cp[stream]; ok {
			hold(name, seq+1)
		}
	}
	return floor, holder, nil
}

// firstNewer returns the first sequence from from on, below limit, whose
// event's time is after threshold, or limit when there is none.
func (e *Engine) firstNewer(ctx context.Context, stream string, from, limit uint64, threshold time.Time) (uint64, error) {
	after := from - 1
	for after+1 < limit {
		events, err := e.cfg.Store.Read(ctx, stream, after, agePage)
		if err != nil {
			return 0, err
		}
		if len(events) == 0 {
			return 0, fmt.Errorf("stream %q read as empty below its version %d", stream, limit)
		}
		for _, m := range events {
			if m.Sequence >= limit || m.Time.After(threshold) {
				return min(m.Sequence, limit), nil
			}
		}
		after = events[len(events)-1].Sequence
	}
	return limit, nil
}
