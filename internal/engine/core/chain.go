package core

import (
	"context"
	"fmt"
	"slices"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/celexpr"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/middleware"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/router"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

// route builds the router route of a runner, or says what it waits for.
//
// The chain, outermost first: dead-letter (one per source stream, as each
// stream names its own dead-letter stream), recover, the event-name filter,
// the pipeline's middleware, Deserialize when the pipeline has none, recover
// again (so Retry sees a handler's panic as a failure), the projection.
func (e *Engine) route(r *runner) (router.Route, error) {
	spec := r.spec
	route := router.Route{
		Name:     spec.Name,
		Streams:  spec.Streams,
		Capacity: make(map[string]int, len(spec.Streams)),
		// The checkpoint, saved with the read model, is where a restarted
		// or re-wired route goes on.
		Start: func(_ context.Context, stream string) (uint64, error) {
			return r.proj.Checkpoint()[stream], nil
		},
		Settle: func(ctx context.Context, msg engine.Message, o router.Outcome) error {
			if err := r.proj.Settle(ctx, msg, o == router.DeadLettered); err != nil {
				return err
			}
			if o == router.DeadLettered && e.cfg.Metrics != nil {
				e.cfg.Metrics.RecordDeadLetter(r.handler, msg.Stream)
			}
			return nil
		},
	}
	deadLetters := make(map[string]string, len(spec.Streams))
	for _, name := range spec.Streams {
		s, ok := e.stream(name)
		if !ok {
			return router.Route{}, fmt.Errorf("%w: projection %q reads stream %q, which does not exist yet", ErrStreamNotFound, r.handler, name)
		}
		route.Capacity[name] = s.spec.BacklogLimit
		deadLetters[name] = s.spec.DeadLetterStream
	}
	pipe := DefaultPipeline()
	if spec.Pipeline != "" {
		p, ok := e.pipelines[spec.Pipeline]
		if !ok {
			return router.Route{}, fmt.Errorf("%w: projection %q uses pipeline %q, which does not exist yet",
				ErrPipelineNotFound, r.handler, spec.Pipeline)
		}
		pipe = p
	}
	deserialize := e.deserializer(spec, pipe)
	mws, err := e.buildPipeline(pipe, r.handler, deserialize)
	if err != nil {
		return router.Route{}, err
	}
	if !slices.ContainsFunc(pipe.Middleware, func(m MiddlewareSpec) bool { return m.Type == Deserialize }) {
		mws = append(mws, deserialize)
	}
	mws = append(mws, middleware.Recover())
	if len(spec.EventNames) > 0 {
		mws = slices.Insert(mws, 0, eventNameFilter(spec.EventNames))
	}
	mws = slices.Insert(mws, 0, middleware.Recover())

	inner := engine.Chain(r.proj, mws...)
	byStream := make(map[string]engine.Handler, len(deadLetters))
	for source, dead := range deadLetters {
		dl, err := middleware.DeadLetter(middleware.DeadLetterConfig{
			Enqueuer: countingEnqueuer{e},
			Stream:   dead,
			Handler:  r.handler,
		})
		if err != nil {
			return router.Route{}, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
		byStream[source] = dl(inner)
	}
	if len(byStream) == 1 {
		route.Handler = byStream[spec.Streams[0]] // the common case, one hop less per event
		return route, nil
	}
	route.Handler = engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		return byStream[msg.Stream].Handle(ctx, msg)
	})
	return route, nil
}

// deserializer is the projection's Deserialize. It decodes only the payloads
// whose value something reads: a Filter, a key expression or a Reduce reads
// every one, and Append and Latest read those that are not JSON (a JSON
// payload is kept as its own text). The others are only validated, which
// for JSON is several times cheaper than building the value.
func (e *Engine) deserializer(spec ProjectionSpec, pipe PipelineSpec) engine.Middleware {
	valueRead := spec.KeyExpression != "" || spec.Type == projection.Reduce ||
		slices.ContainsFunc(pipe.Middleware, func(m MiddlewareSpec) bool { return m.Type == Filter })
	keepsPayload := spec.Type != projection.Count
	return middleware.DeserializeIfNeeded(e, func(msg engine.Message) bool {
		return valueRead || (keepsPayload && msg.ContentType != serde.JSON)
	})
}

// buildPipeline turns a pipeline spec into middleware for the named handler,
// with deserialize as its Deserialize entry (nil: one that always decodes).
// Every setting is checked here, so ApplyPipeline can refuse a bad pipeline
// before any projection uses it.
func (e *Engine) buildPipeline(p PipelineSpec, handler string, deserialize engine.Middleware) ([]engine.Middleware, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	mws := make([]engine.Middleware, 0, len(p.Middleware))
	for i, m := range p.Middleware {
		mw, err := e.buildMiddleware(m, handler, deserialize)
		if err != nil {
			return nil, fmt.Errorf("%w: pipeline %q: middleware[%d] (%s): %w", ErrInvalidSpec, p.Name, i, m.Type, err)
		}
		if mw != nil {
			mws = append(mws, mw)
		}
	}
	return mws, nil
}

func (e *Engine) buildMiddleware(m MiddlewareSpec, handler string, deserialize engine.Middleware) (engine.Middleware, error) {
	switch m.Type {
	case Deserialize:
		if deserialize != nil {
			return deserialize, nil
		}
		return middleware.Deserialize(e), nil
	case Logging:
		return middleware.Logging(e.cfg.Logger, m.LogLevel, handler), nil
	case Retry:
		var cfg middleware.RetryConfig
		if m.Retry != nil {
			cfg = *m.Retry
		}
		return middleware.Retry(cfg)
	case Metrics:
		if e.cfg.Metrics == nil {
			return nil, nil
		}
		return e.cfg.Metrics.Middleware(handler), nil
	case Dedupe:
		var cfg middleware.DedupeConfig
		if m.Dedupe != nil {
			cfg = *m.Dedupe
		}
		return middleware.Dedupe(cfg)
	case Timeout:
		return middleware.Timeout(m.TimeoutAfter), nil
	case Filter:
		prog, err := celexpr.CompileFilter(m.FilterExpression)
		if err != nil {
			return nil, err
		}
		return middleware.Filter(prog), nil
	}
	return nil, fmt.Errorf("unknown middleware type %q", m.Type)
}

// eventNameFilter skips events whose name the projection does not list,
// before anything decodes them.
func eventNameFilter(names []string) engine.Middleware {
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		set[n] = struct{}{}
	}
	return middleware.Filter(middleware.PredicateFunc(func(_ context.Context, msg engine.Message) (bool, error) {
		_, ok := set[msg.Name]
		return ok, nil
	}))
}

// Decode decodes a payload of stream with the stream's codecs; it is what the
// Deserialize middleware uses.
func (e *Engine) Decode(streamName, contentType string, payload []byte) (any, error) {
	s, ok := e.stream(streamName)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrStreamNotFound, streamName)
	}
	return s.codecs.Decode(contentType, payload)
}

// Validate checks a payload of stream as Decode would, without building its
// value where the stream's codec can (see serde.Validator).
func (e *Engine) Validate(streamName, contentType string, payload []byte) error {
	s, ok := e.stream(streamName)
	if !ok {
		return fmt.Errorf("%w: %q", ErrStreamNotFound, streamName)
	}
	return s.codecs.Validate(contentType, payload)
}
