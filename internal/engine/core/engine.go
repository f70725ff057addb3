// Package core assembles the engine's parts (outbox, processor, event store,
// broker, router, read models, serializers) into one Engine with idempotent
// Apply and Remove methods for streams, pipelines and projections, ingest,
// queries and stats. It is what the operator's manager runs.
package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/middleware"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/processor"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/rate"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/reactor"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/router"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// Config wires an Engine. Nil storage parts get in-memory implementations.
type Config struct {
	Store      eventstore.Store
	Outbox     outbox.Outbox
	Broker     broker.Broker
	ReadModels readmodel.Store
	Serde      *serde.Registry
	// Metrics, when set, backs the Metrics middleware and the queue-depth
	// gauges; without it the Metrics entry of a pipeline does nothing.
	Metrics *middleware.Metrics
	Logger  *slog.Logger
	// DeadLetterStream receives failed events of streams that name none
	// (default "dead").
	DeadLetterStream string
	// PollingInterval is the outbox processor's safety-net wake-up (default 100ms).
	PollingInterval time.Duration
	// BatchDelay is how long the processor waits for a fuller batch (see
	// processor.Config.BatchDelay; default 0, at once).
	BatchDelay time.Duration
	// BatchSize is how many outbox entries the processor takes at once
	// (default 1024, so that ten NDJSON requests' worth share one append,
	// one publish and one outbox round trip).
	BatchSize int
	// StatsInterval is how often queue-depth gauges are refreshed (default 5s).
	StatsInterval time.Duration
	// CompactionInterval is how often Run enforces the streams' retention
	// (default 1 minute); the first pass comes one interval after Run starts.
	CompactionInterval time.Duration
	// AllowPrivateSinks lets reactors deliver to loopback and link-local
	// addresses (tests, local use); see reactor.NewClient.
	AllowPrivateSinks bool
	// Tokens gives the bearer tokens of reactors whose sink names an
	// audience; without it such a reactor is refused (ErrInvalidSpec).
	Tokens reactor.TokenSource
	// Appender, when set, stores what Ingest accepts and what handlers
	// return (through Outbox) in place of the processor; Run then feeds the
	// broker from the store. See Appender.
	Appender Appender
	// Standby starts the engine as a replica that is not the leader, on
	// storage shared with it (NATS): it takes events and answers reads and
	// queries, and records the projections and reactors applied to it
	// without running them or writing their storage, until Run (the
	// replica was elected) starts them. See standby.go.
	Standby bool
	// RebuildCheckInterval is how often Run checks whether a read model
	// being rebuilt has caught up and can replace the old one (default
	// 100ms; see ApplyProjection).
	RebuildCheckInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Store == nil {
		c.Store = eventstore.NewMemory()
	}
	if c.Outbox == nil {
		c.Outbox = outbox.NewMemory(0)
	}
	if c.Broker == nil {
		c.Broker = broker.NewMemory()
	}
	if c.ReadModels == nil {
		c.ReadModels = readmodel.NewMemory()
	}
	if c.Serde == nil {
		c.Serde = serde.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DeadLetterStream == "" {
		c.DeadLetterStream = "dead"
	}
	if c.PollingInterval <= 0 {
		c.PollingInterval = 100 * time.Millisecond
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1024
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = 5 * time.Second
	}
	if c.CompactionInterval <= 0 {
		c.CompactionInterval = time.Minute
	}
	if c.RebuildCheckInterval <= 0 {
		c.RebuildCheckInterval = 100 * time.Millisecond
	}
}

// Engine is the running event-sourcing engine.
type Engine struct {
	cfg       Config
	processor *processor.Processor
	router    *router.Router
	// versions reserves keys' versions and event IDs at acceptance.
	versions *versions.Table

	// streams is replaced, never changed in place, so the hot paths (ingest,
	// Deserialize) read it without a lock.
	streams atomic.Pointer[map[string]*stream]

	// applyMu serialises the Apply and Remove calls of projections and
	// reactors with the start of a standby engine (activate).
	applyMu sync.Mutex
	// mu guards the maps below and serialises Apply/Remove calls.
	mu          sync.Mutex
	pipelines   map[string]PipelineSpec
	projections map[string]*projectionState
	reactors    map[string]*reactorState
	standby     standby
	feed        feed

	// sinkClient delivers every reactor's events.
	sinkClient *http.Client

	// redriveMu runs one projection redrive at a time, so two never both
	// find a dead letter not yet redriven and deliver it twice (a reactor
	// guards its own, see RedriveReactor).
	redriveMu sync.Mutex

	stopped atomic.Bool
}

type stream struct {
	spec   StreamSpec
	codecs *serde.Set
	// appended counts the events appended to the stream for
	// StreamStats.EventsPerSecond; kept when the spec changes.
	appended *rate.Counter
}

// projectionState is one projection: the runner whose read model queries
// read, and while a changed spec's read model is rebuilt, the runner that
// builds it beside the first (see rebuild.go).
type projectionState struct {
	// spec is the spec last applied.
	spec    ProjectionSpec
	serving *runner
	rebuild *runner // nil unless a rebuild runs
}

// current is the runner that folds as spec says: the rebuild while there
// is one.
func (st *projectionState) current() *runner {
	if st.rebuild != nil {
		return st.rebuild
	}
	return st.serving
}

// runners are the projection's runners, the serving one first.
func (st *projectionState) runners() []*runner {
	if st.rebuild != nil {
		return []*runner{st.serving, st.rebuild}
	}
	return []*runner{st.serving}
}

// New builds an Engine. It does nothing until Run, except that Ingest and the
// Apply methods work at once (events wait in the outbox).
func New(cfg Config) (*Engine, error) {
	cfg.setDefaults()
	table := versions.New(cfg.Store)
	if err := restoreVersions(table, cfg.Outbox); err != nil {
		return nil, err
	}
	p, err := processor.New(processor.Config{
		Outbox:          cfg.Outbox,
		Store:           cfg.Store,
		Broker:          cfg.Broker,
		BatchSize:       cfg.BatchSize,
		PollingInterval: cfg.PollingInterval,
		BatchDelay:      cfg.BatchDelay,
		Logger:          cfg.Logger,
		Stored:          table.Stored,
	})
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:         cfg,
		processor:   p,
		versions:    table,
		pipelines:   make(map[string]PipelineSpec),
		projections: make(map[string]*projectionState),
		reactors:    make(map[string]*reactorState),
		sinkClient:  reactor.NewClient(cfg.AllowPrivateSinks),
	}
	if cfg.Standby {
		e.standby = standby{on: true, projections: map[string]ProjectionSpec{}, reactors: map[string]ReactorSpec{}}
	}
	e.streams.Store(&map[string]*stream{})
	e.router, err = router.New(router.Config{
		Broker: cfg.Broker,
		Store:  cfg.Store,
		Outbox: countingEnqueuer{e},
		Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// restoreVersions hands the version table the events a restart found in the
// outbox: accepted, with their versions, and not yet stored.
func restoreVersions(table *versions.Table, ob outbox.Outbox) error {
	batch := make([]engine.Message, 0, outbox.ScanPage)
	err := ob.Scan(context.Background(), func(e outbox.Entry) error {
		batch = append(batch, e.Message)
		if len(batch) == cap(batch) {
			table.Restore(batch)
			batch = batch[:0]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the outbox's pending events: %w", err)
	}
	table.Restore(batch)
	return nil
}

// Run runs the outbox processor, the projections and the compaction of
// streams with a retention (see Retention) until ctx ends. Then it stops
// taking events, lets the processor flush the outbox, lets each projection
// finish the event in hand, and returns.
func (e *Engine) Run(ctx context.Context) error {
	routerCtx, stopRouter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRouter()
	if e.cfg.Appender != nil {
		// Before any projection or reactor starts: see feed.
		e.mu.Lock()
		e.startFeed(routerCtx)
		e.mu.Unlock()
	}
	e.activate(ctx)
	routerDone := make(chan error, 1)
	go func() { routerDone <- e.router.Run(routerCtx) }()

	statsDone := make(chan struct{})
	go func() {
		defer close(statsDone)
		e.refreshGauges(ctx)
	}()
	compactDone := make(chan struct{})
	go func() {
		defer close(compactDone)
		e.compactLoop(ctx)
	}()
	rebuildDone := make(chan struct{})
	go func() {
		defer close(rebuildDone)
		e.rebuildLoop(ctx)
	}()

	stopIngest := context.AfterFunc(ctx, func() { e.stopped.Store(true) })
	defer stopIngest()

	err := e.processor.Run(ctx) // returns once ctx ends and the outbox is drained
	e.stopped.Store(true)       // AfterFunc may not have run yet
	stopRouter()
	e.feed.wg.Wait()
	<-statsDone
	<-compactDone
	<-rebuildDone
	if rerr := <-routerDone; err == nil {
		err = rerr
	}
	if cerr := e.closeReactors(); err == nil {
		err = cerr
	}
	return err
}

// Close releases the storage parts.
func (e *Engine) Close() error {
	e.sinkClient.CloseIdleConnections()
	return errors.Join(
		e.cfg.Broker.Close(),
		e.cfg.Outbox.Close(),
		e.cfg.Store.Close(),
		e.cfg.ReadModels.Close(),
	)
}

// ApplyStream adds or updates a stream. A schema that cannot be used is an
// error wrapping ErrInvalidSpec and serde.ErrInvalidSchema or
// serde.ErrUnsupportedContentType, and leaves the stream as it was.
func (e *Engine) ApplyStream(spec StreamSpec) error {
	if spec.Name == "" {
		return invalid("stream needs a name")
	}
	if len(spec.ContentTypes) == 0 {
		spec.ContentTypes = []string{serde.JSON}
	}
	if spec.BacklogLimit <= 0 {
		spec.BacklogLimit = router.DefaultCapacity
	}
	if spec.DeadLetterStream == "" {
		spec.DeadLetterStream = e.cfg.DeadLetterStream
	}
	if spec.DeadLetterStream == spec.Name {
		return invalid("stream %q cannot be its own dead-letter stream", spec.Name)
	}
	if spec.Retention.MaxAge < 0 {
		return invalid("stream %q: retention maxAge %s is negative", spec.Name, spec.Retention.MaxAge)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.stream(spec.Name); ok && reflect.DeepEqual(s.spec, spec) {
		return nil // controllers apply on every pass; nothing to re-wire
	}
	codecs, err := e.cfg.Serde.ForStream(spec.ContentTypes, spec.Schema)
	if err != nil {
		return fmt.Errorf("%w: stream %q: %w", ErrInvalidSpec, spec.Name, err)
	}
	appended := new(rate.Counter)
	if old, ok := e.stream(spec.Name); ok {
		appended = old.appended
	}
	e.updateStreams(func(m map[string]*stream) { m[spec.Name] = &stream{spec: spec, codecs: codecs, appended: appended} })
	e.follow(spec.Name) // before its consumers start: see feed
	e.rewireUsing(func(p ProjectionSpec) bool { return slices.Contains(p.Streams, spec.Name) })
	e.rewireReactorsUsing(func(r ReactorSpec) bool { return r.usesStream(spec.Name) })
	return nil
}

// RemoveStream stops ingest into the stream and reads of it, and pauses the
// projections that read it. Its stored events stay in the event store.
func (e *Engine) RemoveStream(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.updateStreams(func(m map[string]*stream) { delete(m, name) })
	e.unfollow(name)
	e.rewireUsing(func(p ProjectionSpec) bool { return slices.Contains(p.Streams, name) })
	e.rewireReactorsUsing(func(r ReactorSpec) bool { return r.usesStream(name) })
}

// ApplyPipeline adds or updates a pipeline and re-wires, live, every
// projection that uses it. An invalid pipeline (unknown type, bad settings,
// a CEL expression that does not compile) is an error wrapping ErrInvalidSpec
// and leaves the pipeline as it was.
func (e *Engine) ApplyPipeline(spec PipelineSpec) error {
	if spec.Name == "" {
		return invalid("pipeline needs a name")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.pipelines[spec.Name]; ok && reflect.DeepEqual(old, spec) {
		return nil // unchanged: re-wiring would only reset Dedupe's memory
	}
	if _, err := e.buildPipeline(spec, "validate", nil); err != nil {
		return err
	}
	e.pipelines[spec.Name] = spec
	e.rewireUsing(func(p ProjectionSpec) bool { return p.Pipeline == spec.Name })
	e.rewireReactorsUsing(func(r ReactorSpec) bool { return r.Pipeline == spec.Name })
	return nil
}

// RemovePipeline removes a pipeline; projections that use it pause until it
// is applied again.
func (e *Engine) RemovePipeline(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.pipelines, name)
	e.rewireUsing(func(p ProjectionSpec) bool { return p.Pipeline == name })
	e.rewireReactorsUsing(func(r ReactorSpec) bool { return r.Pipeline == name })
}

// ApplyProjection adds or updates a projection. A spec error wraps
// ErrInvalidSpec and leaves the projection as it was. A missing stream or
// pipeline is not fatal: the projection is registered, waits, and starts by
// itself when the stream or pipeline is applied; the returned error wraps
// ErrStreamNotFound or ErrPipelineNotFound so the caller can report it.
//
// Changing what the read model means (type, key, key expression, reduce,
// event names or start) rebuilds it without downtime: the new read model is
// folded beside the old one, which keeps answering queries (and following
// its streams) until the new one has caught up and replaces it at once
// (ProjectionStats.Rebuild says how far it is). Changing only streams or
// pipeline keeps the read model.
func (e *Engine) ApplyProjection(ctx context.Context, spec ProjectionSpec) error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	return e.applyProjection(ctx, spec)
}

func (e *Engine) applyProjection(ctx context.Context, spec ProjectionSpec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.standby.recordProjection(spec) {
		return nil
	}

	st, exists := e.projections[spec.Name]
	if !exists {
		st, err := e.addProjection(ctx, spec)
		if err != nil {
			return err
		}
		e.projections[spec.Name] = st
		return st.current().waiting
	}
	if st.current().waiting == nil && reflect.DeepEqual(st.spec, spec) {
		return nil // running as specified
	}
	switch {
	case !st.serving.paused && sameFold(st.serving.spec, spec):
		// Back to the fold of the read model queries read: no rebuild.
		if err := e.dropRebuild(ctx, st); err != nil {
			return err
		}
		if err := e.update(ctx, st.serving, spec); err != nil {
			return err
		}
	case st.rebuild != nil && sameFold(st.rebuild.spec, spec):
		if err := e.update(ctx, st.rebuild, spec); err != nil {
			return err
		}
	default:
		if err := e.startRebuild(ctx, st, spec); err != nil {
			return err
		}
	}
	st.spec = spec
	return st.current().waiting
}

// addProjection builds a projection the engine does not run yet. Its read
// model and checkpoint are those stored under its name (a restart carries
// on), and a rebuild the store holds for this very spec goes on too.
func (e *Engine) addProjection(ctx context.Context, spec ProjectionSpec) (*projectionState, error) {
	stored, err := e.storedRebuilds(ctx, spec.Name)
	if err != nil {
		return nil, err
	}
	shadow := rebuildName(spec)
	for _, name := range stored {
		if name == shadow {
			continue
		}
		// A rebuild for a spec that is no longer wanted.
		if err := e.cfg.ReadModels.Delete(ctx, name); err != nil {
			return nil, fmt.Errorf("delete read model %q: %w", name, err)
		}
	}
	if slices.Contains(stored, shadow) {
		return e.resumeRebuild(spec)
	}
	r, err := e.newRunner(ctx, spec, spec.Name)
	if err != nil {
		return nil, err
	}
	e.rewire(r)
	return &projectionState{spec: spec, serving: r}, nil
}

// update applies spec to r, which folds as spec does: only its streams or
// pipeline change. The read model and checkpoint are kept.
func (e *Engine) update(ctx context.Context, r *runner, spec ProjectionSpec) error {
	name := r.spec.Name
	if !equalSets(r.spec.Streams, spec.Streams) {
		// A projection keeps a checkpoint for each stream it was built
		// with: build it again for the new list, from the stored
		// checkpoint, so the read model is kept and an added stream is read
		// from its start (or, for Latest, from its end).
		e.router.Remove(name)
		if spec.StartFrom == projection.Latest {
			if err := e.startAtEnd(ctx, spec.Streams, name); err != nil {
				return err
			}
		}
		s := spec
		s.Name = name
		proj, err := projection.New(s.Spec, e.cfg.ReadModels)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
		r.proj = proj
	}
	r.spec = spec
	r.spec.Name = name
	e.rewire(r)
	return nil
}

// RemoveProjection stops the projection and deletes its read model, and
// the one a rebuild was building.
func (e *Engine) RemoveProjection(ctx context.Context, name string) error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.standby.forgetProjection(name) {
		return nil
	}
	if st, ok := e.projections[name]; ok {
		if err := e.dropRebuild(ctx, st); err != nil {
			return err
		}
	}
	e.router.Remove(name)
	delete(e.projections, name)
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.ForgetHandler(name)
	}
	if err := e.cfg.ReadModels.Delete(ctx, name); err != nil && !errors.Is(err, readmodel.ErrNotFound) {
		return fmt.Errorf("delete read model of projection %q: %w", name, err)
	}
	return nil
}

// startAtEnd records the start of a Latest read model named name: the
// current end of each of streams it has no checkpoint for, so events
// appended while it is paused or restarting are not skipped.
func (e *Engine) startAtEnd(ctx context.Context, streams []string, name string) error {
	existing, err := e.cfg.ReadModels.Checkpoint(ctx, name)
	if err != nil {
		return fmt.Errorf("read checkpoint of projection %q: %w", name, err)
	}
	cp := readmodel.Checkpoint{}
	for _, s := range streams {
		if _, ok := existing[s]; ok {
			continue
		}
		v, err := e.cfg.Store.Version(ctx, s)
		if err != nil {
			return fmt.Errorf("read version of stream %q: %w", s, err)
		}
		cp[s] = v
	}
	if err := e.cfg.ReadModels.Apply(ctx, name, nil, cp); err != nil {
		return fmt.Errorf("record start of projection %q: %w", name, err)
	}
	return nil
}

// sameFold reports whether two specs fold events into the same read model.
func sameFold(a, b ProjectionSpec) bool {
	return a.Type == b.Type && a.Key == b.Key && a.KeyExpression == b.KeyExpression &&
		a.Reducer == b.Reducer && a.StartFrom == b.StartFrom && equalSets(a.EventNames, b.EventNames)
}

// updateStreams copies the stream map, lets f change the copy and publishes it.
func (e *Engine) updateStreams(f func(map[string]*stream)) {
	old := *e.streams.Load()
	m := make(map[string]*stream, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	f(m)
	e.streams.Store(&m)
}

func (e *Engine) stream(name string) (*stream, bool) {
	s, ok := (*e.streams.Load())[name]
	return s, ok
}

// rewireUsing re-wires every runner whose spec matches f. Callers hold e.mu.
func (e *Engine) rewireUsing(f func(ProjectionSpec) bool) {
	for _, st := range e.projections {
		for _, r := range st.runners() {
			if f(r.spec) {
				e.rewire(r)
			}
		}
	}
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[string]int, len(a))
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s] == 0 {
			return false
		}
		seen[s]--
	}
	return true
}

// Ready reports whether the engine takes events: nil until shutdown begins
// or the outbox stops taking writes, so a readiness probe takes the replica
// out of its Service while it drains.
func (e *Engine) Ready() error {
	if e.stopped.Load() {
		return ErrStopped
	}
	return e.Healthy()
}

// Healthy reports a store that has stopped taking writes for good: a
// durable outbox after a failed fsync (what reached the disk is unknown
// until a restart reads it back), or read models whose background commit
// failed. A liveness probe on it gets the manager restarted instead of
// answering every ingest, or holding every projection, with an error.
func (e *Engine) Healthy() error {
	if f, ok := e.cfg.Outbox.(failureReporter); ok {
		if err := f.Failure(); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
	}
	if f, ok := e.cfg.ReadModels.(failureReporter); ok {
		if err := f.Failure(); err != nil {
			return fmt.Errorf("read models: %w", err)
		}
	}
	return nil
}

// failureReporter is implemented by stores that can stop for good, as the
// disk store's outbox log and read models do.
type failureReporter interface {
	Failure() error
}
