package controller

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
)

// StatusFigures gives the HTTP API of a replica that does not lead the
// counters the leader last wrote in its Projections' and Reactors' status
// (every StatusRefresh), so that its lists show them rather than null.
type StatusFigures struct {
	// Reader reads the objects, from the manager's cache.
	Reader client.Reader
}

var _ httpapi.LeaderFigures = StatusFigures{}

// statusReadTimeout bounds one read: a list waits for no cache.
const statusReadTimeout = time.Second

// ProjectionFigures implements httpapi.LeaderFigures.
func (s StatusFigures) ProjectionFigures(ctx context.Context, namespace, name string) (httpapi.Figures, bool) {
	var p esv1.Projection
	if !s.get(ctx, namespace, name, &p) {
		return httpapi.Figures{}, false
	}
	return figures(p.Status.EventsProcessed, p.Status.DeadLettered, p.Status.Conditions)
}

// ReactorFigures implements httpapi.LeaderFigures.
func (s StatusFigures) ReactorFigures(ctx context.Context, namespace, name string) (httpapi.Figures, bool) {
	var r esv1.Reactor
	if !s.get(ctx, namespace, name, &r) {
		return httpapi.Figures{}, false
	}
	return figures(r.Status.EventsDelivered, r.Status.DeadLettered, r.Status.Conditions)
}

func (s StatusFigures) get(ctx context.Context, namespace, name string, obj client.Object) bool {
	ctx, cancel := context.WithTimeout(ctx, statusReadTimeout)
	defer cancel()
	return s.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj) == nil
}

// figures are a status's counters; none before the leader has written a
// Ready condition (the counters would read 0, not unknown).
func figures(handled, deadLettered int64, conditions []metav1.Condition) (httpapi.Figures, bool) {
	ready := meta.FindStatusCondition(conditions, ConditionReady)
	if ready == nil {
		return httpapi.Figures{}, false
	}
	return httpapi.Figures{
		Handled:      uint64(max(handled, 0)),
		DeadLettered: uint64(max(deadLettered, 0)),
		Ready:        ready.Status == metav1.ConditionTrue,
	}, true
}
