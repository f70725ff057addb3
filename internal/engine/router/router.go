// Package router delivers each stream's events, in order, to the handlers
// subscribed to it, and puts the messages handlers return into the outbox.
//
// A route consumes its streams from a start position: it replays stored
// events from the event store, then follows the broker live, dropping any
// event it has already seen and reading any it missed back from the store, so
// the switch-over has no gap and no duplicate. A route slower than the
// publisher never makes it wait: when its queue is full the broker drops it,
// and it goes through the same switch-over again, from the store, with at
// most one queue of events held for it. Routes can be added, replaced and
// removed while the router runs.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// Enqueuer takes the messages handlers return (the outbox).
type Enqueuer interface {
	Enqueue(ctx context.Context, msgs []engine.Message) error
}

// Outcome is how the handling of one message ended.
type Outcome int

const (
	// Skipped means a middleware decided the handler need not see it
	// (filter, dedupe, already applied).
	Skipped Outcome = iota + 1
	// DeadLettered means it failed for good and is in the dead-letter stream.
	DeadLettered
)

// Route connects streams to a handler.
type Route struct {
	// Name identifies the route; adding a route with a taken name replaces it.
	Name string
	// Streams are consumed independently, each in its own order.
	Streams []string
	// Handler is the whole chain: middleware around the final handler. The
	// router never calls it concurrently.
	Handler engine.Handler
	// Capacity is the broker queue bound for each stream (backlogLimit): how
	// far the route may fall behind the live feed before it reads from the
	// store instead. Streams absent from it get DefaultCapacity.
	Capacity map[string]int
	// Start returns the sequence after which the route consumes stream,
	// e.g. a projection's checkpoint. Nil starts at the stream's current end.
	Start func(ctx context.Context, stream string) (uint64, error)
	// Settle is told about messages that ended Skipped or DeadLettered, so a
	// projection can move its checkpoint past them. Nil ignores them.
	Settle func(ctx context.Context, msg engine.Message, outcome Outcome) error
}

// DefaultCapacity is the broker queue bound of a stream with no Capacity.
const DefaultCapacity = 1000

// Config wires a Router.
type Config struct {
	Broker broker.Broker
	Store  eventstore.Store
	Outbox Enqueuer
	Logger *slog.Logger
	// ReadBatch is how many stored events one catch-up read takes (default 256).
	ReadBatch int
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ReadBatch <= 0 {
		c.ReadBatch = 256
	}
}

// Validate reports a missing dependency.
func (c *Config) Validate() error {
	switch {
	case c.Broker == nil:
		return errors.New("router: Broker is required")
	case c.Store == nil:
		return errors.New("router: Store is required")
	case c.Outbox == nil:
		return errors.New("router: Outbox is required")
	}
	return nil
}

// Router runs routes. Routes added before Run start when Run starts.
type Router struct {
	cfg Config

	mu      sync.Mutex
	ctx     context.Context // the Run context; nil until Run starts
	routes  map[string]*running
	stopped bool
}

// New returns a Router for cfg.
func New(cfg Config) (*Router, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Router{cfg: cfg, routes: make(map[string]*running)}, nil
}

// Run starts the routes and blocks until ctx ends, then stops every route,
// letting each finish the message in hand, and returns nil.
func (r *Router) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.ctx != nil || r.stopped {
		r.mu.Unlock()
		return errors.New("router: Run called twice")
	}
	r.ctx = ctx
	for _, rt := range r.routes {
		rt.start(ctx)
	}
	r.mu.Unlock()

	<-ctx.Done()

	r.mu.Lock()
	r.stopped = true
	routes := make([]*running, 0, len(r.routes))
	for _, rt := range r.routes {
		routes = append(routes, rt)
	}
	r.mu.Unlock()
	for _, rt := range routes {
		rt.stop()
	}
	return nil
}

// Add adds route, or replaces the route of the same name. When only the
// handler (or Settle) changes, the running consumers switch to it between two
// messages, so no event is lost or handled twice. When the streams or
// capacities change, the old consumers finish their message and stop, and new
// ones start from route.Start.
func (r *Router) Add(route Route) error {
	if route.Name == "" {
		return errors.New("router: route needs a name")
	}
	if len(route.Streams) == 0 {
		return fmt.Errorf("router: route %q consumes no stream", route.Name)
	}
	if route.Handler == nil {
		return fmt.Errorf("router: route %q has no handler", route.Name)
	}
	seen := make(map[string]bool, len(route.Streams))
	for _, s := range route.Streams {
		if seen[s] {
			return fmt.Errorf("router: route %q lists stream %q twice", route.Name, s)
		}
		seen[s] = true
	}
	route.Streams = append([]string(nil), route.Streams...)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return errors.New("router: stopped")
	}
	if old, ok := r.routes[route.Name]; ok {
		if old.sameWiring(route) {
			old.swap(route)
			return nil
		}
		// Stopping waits for the message in hand; holding r.mu meanwhile
		// only delays other Add/Remove calls, which is what we want.
		old.stop()
	}
	rt := newRunning(r.cfg, route)
	r.routes[route.Name] = rt
	if r.ctx != nil {
		rt.start(r.ctx)
	}
	return nil
}

// Remove stops the named route after the message in hand. Removing an
// unknown route is a no-op.
func (r *Router) Remove(name string) {
	r.mu.Lock()
	rt, ok := r.routes[name]
	delete(r.routes, name)
	r.mu.Unlock()
	if ok {
		rt.stop()
	}
}

// RouteStats is a snapshot of one route's progress.
type RouteStats struct {
	Name string
	// Streams maps each consumed stream to its progress.
	Streams map[string]StreamStats
}

// StreamStats is a route's progress on one stream.
type StreamStats struct {
	// Delivered is the sequence of the last event that was settled.
	Delivered uint64
	// Queued is the number of events waiting in the broker queue.
	Queued int
	// Lags is how many times the route fell behind: its queue was full, so
	// the broker dropped it and it caught up from the store.
	Lags uint64
	// Err is the last error that stopped delivery, if it has not recovered.
	Err string
}

// Stats returns a snapshot of the named route, false when there is none.
func (r *Router) Stats(name string) (RouteStats, bool) {
	r.mu.Lock()
	rt, ok := r.routes[name]
	r.mu.Unlock()
	if !ok {
		return RouteStats{}, false
	}
	return rt.stats(), true
}

// Names returns the names of the routes.
func (r *Router) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.routes))
	for name := range r.routes {
		names = append(names, name)
	}
	return names
}
