package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

// list is the answer of the list endpoints.
type list[T any] struct {
	Items []T `json:"items"`
}

// streamItem is a stream of a namespace with its live figures.
type streamItem struct {
	Name            string  `json:"name"`
	LastSequence    uint64  `json:"lastSequence"`
	Subscribers     int     `json:"subscribers"`
	EventsPerSecond float64 `json:"eventsPerSecond"`
}

// projectionItem and reactorItem are a handler of a namespace with its live
// figures. On a replica that does not lead (Standby) only the lag is its
// own: the counters and ready are the leader's as Config.LeaderFigures
// gives them, or null when it gives none.
type projectionItem struct {
	Name            string  `json:"name"`
	EventsProcessed *uint64 `json:"eventsProcessed"`
	DeadLettered    *uint64 `json:"deadLettered"`
	Lag             uint64  `json:"lag"`
	Ready           *bool   `json:"ready"`
	Standby         bool    `json:"standby,omitempty"`
}

type reactorItem struct {
	Name            string  `json:"name"`
	EventsDelivered *uint64 `json:"eventsDelivered"`
	DeadLettered    *uint64 `json:"deadLettered"`
	Lag             uint64  `json:"lag"`
	Ready           *bool   `json:"ready"`
	Standby         bool    `json:"standby,omitempty"`
}

// listStreams serves GET /v1/namespaces/{namespace}/streams.
func (h *Handler) listStreams(w http.ResponseWriter, r *http.Request) {
	serveList(h, w, r, "streams", listStreamsAction, h.cfg.Engine.StreamNames, core.ErrStreamNotFound,
		func(ctx context.Context, full, name string) (streamItem, error) {
			st, err := h.cfg.Engine.StreamStats(ctx, full)
			return streamItem{Name: name, LastSequence: st.LastSequence, Subscribers: st.Subscribers, EventsPerSecond: st.EventsPerSecond}, err
		})
}

// listProjections serves GET /v1/namespaces/{namespace}/projections.
func (h *Handler) listProjections(w http.ResponseWriter, r *http.Request) {
	serveList(h, w, r, "projections", listProjectionsAction, h.cfg.Engine.ProjectionNames, core.ErrProjectionNotFound,
		func(ctx context.Context, full, name string) (projectionItem, error) {
			st, err := h.cfg.Engine.ProjectionStats(ctx, full)
			if st.Standby {
				it := projectionItem{Name: name, Lag: st.Lag, Standby: true}
				if f, ok := h.leaderFigures(ctx, LeaderFigures.ProjectionFigures, r.PathValue("namespace"), name); ok {
					it.EventsProcessed, it.DeadLettered, it.Ready = &f.Handled, &f.DeadLettered, &f.Ready
				}
				return it, err
			}
			ready := st.Waiting == nil && len(st.Stalled) == 0
			return projectionItem{Name: name, EventsProcessed: &st.Processed, DeadLettered: &st.DeadLettered, Lag: st.Lag, Ready: &ready}, err
		})
}

// listReactors serves GET /v1/namespaces/{namespace}/reactors.
func (h *Handler) listReactors(w http.ResponseWriter, r *http.Request) {
	serveList(h, w, r, "reactors", listReactorsAction, h.cfg.Engine.ReactorNames, core.ErrReactorNotFound,
		func(ctx context.Context, full, name string) (reactorItem, error) {
			st, err := h.cfg.Engine.ReactorStats(ctx, full)
			if st.Standby {
				it := reactorItem{Name: name, Lag: st.Lag, Standby: true}
				if f, ok := h.leaderFigures(ctx, LeaderFigures.ReactorFigures, r.PathValue("namespace"), name); ok {
					it.EventsDelivered, it.DeadLettered, it.Ready = &f.Handled, &f.DeadLettered, &f.Ready
				}
				return it, err
			}
			ready := st.Waiting == nil && st.Stalled == ""
			return reactorItem{Name: name, EventsDelivered: &st.Delivered, DeadLettered: &st.DeadLettered, Lag: st.Lag, Ready: &ready}, err
		})
}

// LeaderFigures gives the counters of the handlers that another replica,
// the leader, runs, as the leader last reported them (in Kubernetes, the
// objects' status). ok is false when it knows none.
type LeaderFigures interface {
	ProjectionFigures(ctx context.Context, namespace, name string) (f Figures, ok bool)
	ReactorFigures(ctx context.Context, namespace, name string) (f Figures, ok bool)
}

// Figures are a handler's counters: events processed (a projection) or
// delivered (a reactor), events dead-lettered, and whether it runs well.
type Figures struct {
	Handled, DeadLettered uint64
	Ready                 bool
}

// leaderFigures asks Config.LeaderFigures, with ask, for the figures of
// the handler ns/name; ok is false when there are none.
func (h *Handler) leaderFigures(ctx context.Context,
	ask func(LeaderFigures, context.Context, string, string) (Figures, bool), ns, name string) (Figures, bool) {
	if h.cfg.LeaderFigures == nil {
		return Figures{}, false
	}
	return ask(h.cfg.LeaderFigures, ctx, ns, name)
}

// serveList answers the objects of one kind the engine runs in the path's
// namespace, sorted by name, each as item makes it from its engine name
// and its name in the namespace. An object removed while the list is built
// (notFound) is left out.
func serveList[T any](h *Handler, w http.ResponseWriter, r *http.Request, kind string,
	action func(ns string) Action, names func() []string, notFound error,
	item func(ctx context.Context, engineName, name string) (T, error)) {
	ns := r.PathValue("namespace")
	if len(validation.IsDNS1123Label(ns)) > 0 {
		newProblem(http.StatusNotFound, kindNotFound, fmt.Sprintf("no namespace %q: not a valid Kubernetes name", ns)).write(w, r)
		return
	}
	if _, p := h.cfg.Guard.Check(r, action(ns)); p != nil {
		p.write(w, r)
		return
	}
	prefix := engineName(ns, "")
	out := list[T]{Items: []T{}}
	for _, full := range names() { // sorted, so the namespace's names are too
		name, ok := strings.CutPrefix(full, prefix)
		if !ok {
			continue
		}
		it, err := item(r.Context(), full, name)
		switch {
		case errors.Is(err, notFound):
			continue
		case err != nil:
			h.cfg.Log.Error(err, "list failed", "namespace", ns, "kind", kind, "name", name)
			unavailable(fmt.Sprintf("the figures of %s %q could not be read; retry", kind, name)).write(w, r)
			return
		}
		out.Items = append(out.Items, it)
	}
	writeJSON(w, http.StatusOK, out)
}
