package router

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// running is a route with its consumers, one per stream.
type running struct {
	route Route // Name, Streams, Capacity and Start never change after creation

	// current holds the Handler and Settle in use; swapped atomically when
	// only they change.
	current atomic.Pointer[Route]
	// handleMu serialises the handler across the route's streams: handlers
	// (and middleware such as Dedupe) are written for one message at a time.
	handleMu sync.Mutex
	// stopped is set under handleMu once the consumers have stopped, so a
	// Redeliver never runs the handler of a route that was removed.
	stopped bool

	consumers []*consumer
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

func newRunning(cfg Config, route Route) *running {
	rt := &running{route: route}
	rt.current.Store(&route)
	for _, s := range route.Streams {
		rt.consumers = append(rt.consumers, newConsumer(rt, s, cfg))
	}
	return rt
}

// sameWiring reports whether route consumes the same streams with the same
// queue bounds, so that swapping its handler in is enough.
func (rt *running) sameWiring(route Route) bool {
	a := slices.Clone(rt.route.Streams)
	b := slices.Clone(route.Streams)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		return false
	}
	for _, s := range a {
		if capacityOf(rt.route, s) != capacityOf(route, s) {
			return false
		}
	}
	return true
}

func capacityOf(route Route, stream string) int {
	if n := route.Capacity[stream]; n > 0 {
		return n
	}
	return DefaultCapacity
}

// swap makes route's Handler and Settle the ones used from the next message on.
func (rt *running) swap(route Route) {
	route.Streams = rt.route.Streams
	route.Capacity = maps.Clone(rt.route.Capacity)
	rt.current.Store(&route)
}

func (rt *running) start(ctx context.Context) {
	ctx, rt.cancel = context.WithCancel(ctx)
	for _, c := range rt.consumers {
		rt.wg.Go(func() { c.run(ctx) })
	}
}

// stop ends the consumers after the message each has in hand and waits.
func (rt *running) stop() {
	if rt.cancel != nil {
		rt.cancel()
	}
	rt.wg.Wait()
	rt.handleMu.Lock()
	rt.stopped = true
	rt.handleMu.Unlock()
}

func (rt *running) stats() RouteStats {
	st := RouteStats{Name: rt.route.Name, Streams: make(map[string]StreamStats, len(rt.consumers))}
	for _, c := range rt.consumers {
		st.Streams[c.stream] = c.stats()
	}
	return st
}
