package core

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/cloudevents"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/middleware"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/reactor"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/router"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/tracing"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// MaxReactorTimeout bounds ReactorSpec.Timeout.
const MaxReactorTimeout = 5 * time.Minute

// ReactorSpec is what the engine needs to know of a Reactor.
type ReactorSpec struct {
	// Name is the engine-wide name ("namespace/name").
	Name    string
	Streams []string
	// EventNames, when set, are the only event names delivered.
	EventNames []string
	// Pipeline names the pipeline; empty means DefaultPipeline.
	Pipeline string
	// StartFrom is where a reactor with no checkpoint starts; empty means
	// Latest (new events only).
	StartFrom projection.StartFrom
	// SinkURL is the resolved http(s) address events are posted to.
	SinkURL string
	// Audience, when set, sends with each delivery a bearer token for it
	// from Config.Tokens (a ServiceAccount token, so the sink can check who
	// calls it).
	Audience string
	// ReplyStream receives the events in the sink's answers; empty ignores
	// answers.
	ReplyStream string
	// Ordering defaults to KeyOrdered; MaxInFlight to 16.
	Ordering    reactor.Ordering
	MaxInFlight int
	// Timeout bounds one HTTP attempt (default 10s, at most 5m).
	Timeout time.Duration
}

func (s *ReactorSpec) setDefaults() {
	if s.StartFrom == "" {
		s.StartFrom = projection.Latest
	}
	if s.Ordering == "" {
		s.Ordering = reactor.KeyOrdered
	}
	if s.MaxInFlight == 0 {
		s.MaxInFlight = reactor.DefaultMaxInFlight
	}
	if s.Timeout == 0 {
		s.Timeout = reactor.DefaultTimeout
	}
}

func (e *Engine) validateReactor(s ReactorSpec) error {
	switch {
	case s.Name == "":
		return invalid("reactor needs a name")
	case len(s.Streams) == 0:
		return invalid("reactor %q reads no stream", s.Name)
	case s.StartFrom != projection.Latest && s.StartFrom != projection.Beginning:
		return invalid("reactor %q: startFrom %q: want Latest or Beginning", s.Name, s.StartFrom)
	case s.Ordering != reactor.Ordered && s.Ordering != reactor.KeyOrdered && s.Ordering != reactor.Unordered:
		return invalid("reactor %q: ordering %q: want Ordered, KeyOrdered or Unordered", s.Name, s.Ordering)
	case s.MaxInFlight < 1 || s.MaxInFlight > reactor.MaxMaxInFlight:
		return invalid("reactor %q: maxInFlight %d: want 1 to %d", s.Name, s.MaxInFlight, reactor.MaxMaxInFlight)
	case s.Timeout < 0 || s.Timeout > MaxReactorTimeout:
		return invalid("reactor %q: timeout %s: want at most %s", s.Name, s.Timeout, MaxReactorTimeout)
	}
	seen := make(map[string]bool, len(s.Streams))
	for _, st := range s.Streams {
		if seen[st] {
			return invalid("reactor %q lists stream %q twice", s.Name, st)
		}
		seen[st] = true
	}
	u, err := url.Parse(s.SinkURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid("reactor %q: sink %q: want an http or https URL", s.Name, s.SinkURL)
	}
	if s.Audience != "" && e.cfg.Tokens == nil {
		return invalid("reactor %q: sink audience %q: this manager knows no ServiceAccount to request tokens for "+
			"(run it in a pod, or start it with --token-service-account=<namespace>/<name>)", s.Name, s.Audience)
	}
	if !e.cfg.AllowPrivateSinks {
		if err := reactor.CheckSinkHost(u.Hostname()); err != nil {
			return fmt.Errorf("%w: reactor %q: %w (the manager allows it with --allow-private-sinks)", ErrInvalidSpec, s.Name, err)
		}
	}
	return nil
}

// ReactorHandlerName is the handler name of a reactor's deliveries: the
// name of its route, checkpoint, metrics and dead letters
// (x-dead-letter-handler). The prefix keeps it apart from a projection of
// the same name.
func ReactorHandlerName(name string) string { return "reactor:" + name }

// reactorState is one applied reactor.
type reactorState struct {
	spec ReactorSpec
	rx   *reactor.Reactor
	// waiting says why it does not run (a missing stream, reply stream or
	// pipeline); nil when it runs.
	waiting error
}

// ApplyReactor adds or updates a reactor. A spec error wraps
// ErrInvalidSpec and leaves the reactor as it was. A missing stream, reply
// stream or pipeline is not fatal: the reactor is registered, waits, and
// starts by itself when it is applied; the error wraps ErrStreamNotFound or
// ErrPipelineNotFound. Its checkpoint is kept under ReactorHandlerName(name)
// in the read-model store, so a restart with durable storage delivers
// again from the first event not done.
func (e *Engine) ApplyReactor(ctx context.Context, spec ReactorSpec) error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	return e.applyReactor(ctx, spec)
}

func (e *Engine) applyReactor(ctx context.Context, spec ReactorSpec) error {
	spec.setDefaults()
	spec.Streams = slices.Clone(spec.Streams)
	if err := e.validateReactor(spec); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.standby.recordReactor(spec) {
		return nil
	}
	st, exists := e.reactors[spec.Name]
	if exists {
		if st.waiting == nil && reflect.DeepEqual(st.spec, spec) {
			return nil
		}
		if st.spec.Ordering != spec.Ordering || st.spec.MaxInFlight != spec.MaxInFlight {
			// Lanes are built for one ordering: finish the deliveries in
			// hand and start over from the checkpoint.
			e.router.Remove(ReactorHandlerName(spec.Name))
			if err := st.rx.Close(); err != nil {
				return err
			}
			st.rx = nil
		}
	} else {
		st = &reactorState{}
	}
	name := ReactorHandlerName(spec.Name)
	if spec.StartFrom == projection.Latest {
		if err := e.startAtEnd(ctx, spec.Streams, name); err != nil {
			return err
		}
	}
	if st.rx == nil {
		rx, err := reactor.New(reactor.Config{
			Name:           spec.Name,
			Checkpoints:    e.cfg.ReadModels,
			CheckpointName: name,
			Ordering:       spec.Ordering,
			MaxInFlight:    spec.MaxInFlight,
			OnDeadLetter:   e.recordDeadLetter(name),
			Logger:         e.cfg.Logger,
		}, nil)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
		st.rx = rx
	}
	st.spec = spec
	e.reactors[spec.Name] = st
	e.rewireReactor(st)
	return st.waiting
}

func (e *Engine) recordDeadLetter(handler string) func(engine.Message) {
	return func(msg engine.Message) {
		if e.cfg.Metrics != nil {
			e.cfg.Metrics.RecordDeadLetter(handler, msg.Stream)
		}
	}
}

// RemoveReactor stops the reactor after the deliveries in hand and deletes
// its checkpoint.
func (e *Engine) RemoveReactor(ctx context.Context, name string) error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.standby.forgetReactor(name) {
		return nil
	}
	st, ok := e.reactors[name]
	if !ok {
		return nil
	}
	handler := ReactorHandlerName(name)
	e.router.Remove(handler)
	delete(e.reactors, name)
	if e.cfg.Metrics != nil {
		e.cfg.Metrics.ForgetHandler(handler)
	}
	return errors.Join(st.rx.Close(), e.cfg.ReadModels.Delete(ctx, handler))
}

// rewireReactor runs st when its streams, reply stream and pipeline exist,
// with a freshly built chain, and stops its route otherwise. Callers hold e.mu.
func (e *Engine) rewireReactor(st *reactorState) {
	name := ReactorHandlerName(st.spec.Name)
	chain, capacity, err := e.reactorChain(st)
	st.waiting = err
	if err != nil {
		e.router.Remove(name)
		return
	}
	st.rx.SetHandler(chain)
	err = e.router.Add(router.Route{
		Name:     name,
		Streams:  st.spec.Streams,
		Capacity: capacity,
		Handler:  st.rx,
		Start:    st.rx.Position,
	})
	if err != nil {
		st.waiting = err
	}
}

// reactorChain builds the chain a reactor's lanes run, as a projection's
// is built (see route), around a Sink: dead-letter per source stream,
// recover, the event-name filter, the pipeline, recover, the sink.
func (e *Engine) reactorChain(st *reactorState) (engine.Handler, map[string]int, error) {
	spec := st.spec
	handler := ReactorHandlerName(spec.Name)
	capacity := make(map[string]int, len(spec.Streams))
	deadLetters := make(map[string]string, len(spec.Streams))
	for _, name := range spec.Streams {
		s, ok := e.stream(name)
		if !ok {
			return nil, nil, fmt.Errorf("%w: reactor %q reads stream %q, which does not exist yet", ErrStreamNotFound, spec.Name, name)
		}
		capacity[name] = s.spec.BacklogLimit
		deadLetters[name] = s.spec.DeadLetterStream
	}
	if spec.ReplyStream != "" {
		if _, ok := e.stream(spec.ReplyStream); !ok {
			return nil, nil, fmt.Errorf("%w: reactor %q replies to stream %q, which does not exist yet",
				ErrStreamNotFound, spec.Name, spec.ReplyStream)
		}
	}
	pipe := DefaultPipeline()
	if spec.Pipeline != "" {
		p, ok := e.pipelines[spec.Pipeline]
		if !ok {
			return nil, nil, fmt.Errorf("%w: reactor %q uses pipeline %q, which does not exist yet", ErrPipelineNotFound, spec.Name, spec.Pipeline)
		}
		pipe = p
	}
	// A sink gets the payload as stored: only a Filter needs its value.
	valueRead := slices.ContainsFunc(pipe.Middleware, func(m MiddlewareSpec) bool { return m.Type == Filter })
	deserialize := middleware.DeserializeIfNeeded(e, func(engine.Message) bool { return valueRead })
	mws, err := e.buildPipeline(pipe, handler, deserialize)
	if err != nil {
		return nil, nil, err
	}
	mws = append(mws, middleware.Recover())
	if len(spec.EventNames) > 0 {
		mws = slices.Insert(mws, 0, eventNameFilter(spec.EventNames))
	}
	mws = slices.Insert(mws, 0, middleware.Recover())

	sinkCfg := reactor.SinkConfig{
		URL:      spec.SinkURL,
		Client:   e.sinkClient,
		Timeout:  spec.Timeout,
		Audience: spec.Audience,
		Tokens:   e.cfg.Tokens,
		Reactor:  spec.Name,
		Tracer:   e.tracer,
	}
	if spec.ReplyStream != "" {
		sinkCfg.Reply = e.appendReplies(spec.Name, spec.ReplyStream)
	}
	if e.cfg.Metrics != nil {
		sinkCfg.RoundTrips = e.cfg.Metrics.Delivery(handler)
	}
	sink, err := reactor.NewSink(sinkCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reactor %q: %w", ErrInvalidSpec, spec.Name, err)
	}
	inner := engine.Chain(sink, mws...)
	byStream := make(map[string]engine.Handler, len(deadLetters))
	for source, dead := range deadLetters {
		dl, err := middleware.DeadLetter(middleware.DeadLetterConfig{Enqueuer: countingEnqueuer{e}, Stream: dead, Handler: handler})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
		byStream[source] = dl(inner)
	}
	return e.traced("reactor", spec.Name)(engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		return byStream[msg.Stream].Handle(ctx, msg)
	})), capacity, nil
}

// appendReplies ingests a sink's replies into stream as HTTP ingest does,
// caused by the delivered event and with its correlation id, without a
// poster (HeaderUser: none, and no claim of one), and carrying
// the trace context of the delivery (in ctx) that brought them. A reply
// without an id gets one derived from the reactor, the cause and its index,
// so a redelivered event stores its replies once. Replies that are not
// valid events of the stream are a permanent error (the cause is
// dead-lettered with the reason); a full outbox or a missing stream is
// waited for, until ctx ends.
func (e *Engine) appendReplies(reactorName, stream string) reactor.ReplyFunc {
	return func(ctx context.Context, cause engine.Message, replies []cloudevents.Event) error {
		events := make([]Event, len(replies))
		delivery, traced := tracing.ContextOf(ctx)
		for i, r := range replies {
			id := r.ID
			if id == "" {
				id = reactor.ReplyID(reactorName, cause.ID, i)
			}
			// The sink is not a poster the API authenticated.
			delete(r.Headers, "ce-"+HeaderUser)
			if traced {
				r.Headers = delivery.Set(r.Headers)
			}
			events[i] = Event{
				ID: id, Name: r.Name, Key: r.Key, ContentType: r.ContentType, Headers: r.Headers, Payload: r.Payload,
				CorrelationID: cause.CorrelationID, CausationID: cause.ID,
			}
		}
		pauses := backoff.Backoff{Initial: time.Millisecond, Max: time.Second}
		for {
			// The replies were parsed for this call: no copies.
			_, err := e.ingest(ctx, stream, events, versions.Any, false)
			var payloadErr *PayloadError
			switch {
			case err == nil:
				return nil
			case errors.As(err, &payloadErr), errors.Is(err, serde.ErrUnsupportedContentType):
				return engine.Permanent(fmt.Errorf("invalid reply for stream %q: %w", stream, err))
			case !errors.Is(err, outbox.ErrFull) && !errors.Is(err, ErrStreamNotFound) && !errors.Is(err, ErrStopped):
				return err
			}
			if serr := backoff.Sleep(ctx, pauses.Next()); serr != nil {
				return fmt.Errorf("append replies: %w (waiting for: %w)", serr, err)
			}
		}
	}
}

// ReactorStats is a reactor's progress.
type ReactorStats struct {
	// Delivered and DeadLettered count since the reactor was applied in
	// this process.
	Delivered    uint64
	DeadLettered uint64
	// InFlight is the events handed to lanes and not yet done.
	InFlight int
	// Lag is the number of events in its streams past its checkpoint.
	Lag uint64
	// Checkpoint is, per stream, the sequence up to which every event is done.
	Checkpoint map[string]uint64
	// Waiting says why it does not run; nil when it runs.
	Waiting error
	// Stalled is the last failure holding delivery up, if any.
	Stalled string
	// Standby says that another replica, the leader, runs the reactor
	// (Config.Standby): only Lag is known here, from the checkpoint the
	// leader stored.
	Standby bool
}

// ReactorStats returns the named reactor's progress.
func (e *Engine) ReactorStats(ctx context.Context, name string) (ReactorStats, error) {
	e.mu.Lock()
	st, ok := e.reactors[name]
	var rx *reactor.Reactor
	var streams []string
	var waiting error
	if ok {
		rx, streams, waiting = st.rx, slices.Clone(st.spec.Streams), st.waiting
	}
	recorded, standingBy := e.standby.reactors[name]
	e.mu.Unlock()
	if standingBy {
		lag, err := e.storedLag(ctx, ReactorHandlerName(name), recorded.Streams)
		return ReactorStats{Standby: true, Lag: lag}, err
	}
	if !ok {
		return ReactorStats{}, fmt.Errorf("%w: reactor %q", ErrReactorNotFound, name)
	}
	s := rx.Stats()
	out := ReactorStats{
		Delivered: s.Delivered, DeadLettered: s.DeadLettered, InFlight: s.InFlight,
		Checkpoint: s.Checkpoint, Waiting: waiting, Stalled: s.Err,
	}
	for _, stream := range streams {
		v, err := e.cfg.Store.Version(ctx, stream)
		if err != nil {
			return ReactorStats{}, err
		}
		// Read now, not from the snapshot: a stream the snapshot did not
		// know yet may have been handed events since.
		cp, err := rx.Checkpoint(ctx, stream)
		if err != nil {
			return ReactorStats{}, err
		}
		out.Checkpoint[stream] = cp
		if v > cp {
			out.Lag += v - cp
		}
	}
	return out, nil
}

// closeReactors stops every reactor's lanes and saves their checkpoints.
func (e *Engine) closeReactors() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	errs := make([]error, 0, len(e.reactors))
	for _, st := range e.reactors {
		errs = append(errs, st.rx.Close())
	}
	return errors.Join(errs...)
}

// usesStream reports whether the reactor reads or replies to stream.
func (s ReactorSpec) usesStream(stream string) bool {
	return s.ReplyStream == stream || slices.Contains(s.Streams, stream)
}

// rewireReactorsUsing re-wires every reactor whose spec matches f. Callers
// hold e.mu.
func (e *Engine) rewireReactorsUsing(f func(ReactorSpec) bool) {
	for _, st := range e.reactors {
		if f(st.spec) {
			e.rewireReactor(st)
		}
	}
}
