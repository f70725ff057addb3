package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

// Indexes of Projections by the objects they reference, so that a Stream or
// Pipeline appearing (or changing) reaches the Projections that wait for it.
const (
	indexProjectionStreams  = "spec.streams"
	indexProjectionPipeline = "spec.pipelineRef.name"
)

// ProjectionReconciler applies Projections to the engine and reports their
// progress.
type ProjectionReconciler struct {
	client.Client
	Engine Engine
	// Leadership, when set, runs the controller on every replica, writing
	// to the API server only on the leader (see Leadership). Nil: on the
	// leader only.
	Leadership *Leadership
}

// +kubebuilder:rbac:groups=eventsourcing.dev,resources=projections,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=eventsourcing.dev,resources=projections/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=eventsourcing.dev,resources=projections/finalizers,verbs=update

// Reconcile brings one Projection's engine state and status up to date.
func (r *ProjectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p esv1.Projection
	return reconcileObject(ctx, r.Client, r.Leadership, req.NamespacedName, &p,
		func(p *esv1.Projection) any { return p.Status },
		func(p *esv1.Projection) { p.Status.ObservedGeneration = p.Generation },
		func(ctx context.Context) error {
			return r.Engine.RemoveProjection(ctx, engineName(req.Namespace, req.Name))
		},
		func(ctx context.Context) (ctrl.Result, error) { return r.reconcileNormal(ctx, &p) })
}

func (r *ProjectionReconciler) reconcileNormal(ctx context.Context, p *esv1.Projection) (ctrl.Result, error) {
	name := engineName(p.Namespace, p.Name)
	p.Status.QueryPath = fmt.Sprintf("/v1/namespaces/%s/projections/%s", p.Namespace, p.Name)
	err := r.Engine.ApplyProjection(ctx, projectionSpec(p))
	switch {
	case errors.Is(err, core.ErrInvalidSpec):
		setReady(&p.Status.Conditions, p.Generation, false, ReasonInvalidSpec, "Fix spec: "+err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	case err != nil && !errors.Is(err, core.ErrStreamNotFound) && !errors.Is(err, core.ErrPipelineNotFound):
		setReady(&p.Status.Conditions, p.Generation, false, ReasonEngineError, err.Error())
		return ctrl.Result{}, err
	}
	stats, serr := r.Engine.ProjectionStats(ctx, name)
	if serr != nil {
		return ctrl.Result{}, serr
	}
	setRebuilding(&p.Status.Conditions, p.Generation, stats.Rebuild)
	switch {
	case errors.Is(err, core.ErrStreamNotFound):
		// Registered and waiting: the Stream watch brings it back.
		setReady(&p.Status.Conditions, p.Generation, false, ReasonStreamNotFound,
			fmt.Sprintf("Waiting for Streams %s in namespace %q: create them or fix spec.streams",
				strings.Join(missingStreams(ctx, r.Client, p.Namespace, p.Spec.Streams), ", "), p.Namespace))
		return ctrl.Result{}, nil
	case errors.Is(err, core.ErrPipelineNotFound):
		setReady(&p.Status.Conditions, p.Generation, false, ReasonPipelineNotFound,
			fmt.Sprintf("Waiting for Pipeline %q in namespace %q: create it or fix spec.pipelineRef",
				p.Spec.PipelineRef.Name, p.Namespace))
		return ctrl.Result{}, nil
	}
	p.Status.EventsProcessed = int64(stats.Processed)
	p.Status.DeadLettered = int64(stats.DeadLettered)
	p.Status.Lag = int64(stats.Lag)
	if len(stats.Stalled) > 0 {
		setReady(&p.Status.Conditions, p.Generation, false, ReasonStalled, stalledMessage(stats.Stalled))
	} else {
		setReady(&p.Status.Conditions, p.Generation, true, ReasonRunning,
			fmt.Sprintf("Folding events into its read model at %s", p.Status.QueryPath))
	}
	if stats.Rebuild != nil {
		// Progress is worth showing sooner than the counters.
		return ctrl.Result{RequeueAfter: RebuildRefresh}, nil
	}
	return ctrl.Result{RequeueAfter: StatusRefresh}, nil
}

// setRebuilding sets the Rebuilding condition: True with the progress while
// a rebuild runs, False once one has finished; a Projection that was never
// rebuilt has none.
func setRebuilding(conditions *[]metav1.Condition, generation int64, rebuild *core.RebuildStats) {
	c := metav1.Condition{Type: ConditionRebuilding, ObservedGeneration: generation}
	switch {
	case rebuild != nil:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonCatchingUp
		c.Message = fmt.Sprintf("Rebuilding the read model for the changed spec: applied %d of %d events; "+
			"queries answer the previous read model until the new one has caught up", rebuild.Applied, rebuild.Total)
	case meta.FindStatusCondition(*conditions, ConditionRebuilding) != nil:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonRebuilt
		c.Message = "The read model is the spec's: queries answer it"
	default:
		return
	}
	meta.SetStatusCondition(conditions, c)
}

// missingStreams lists, quoted, the streams of namespace that do not exist.
func missingStreams(ctx context.Context, c client.Reader, namespace string, streams []string) []string {
	var missing []string
	for _, s := range streams {
		var st esv1.Stream
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: s}, &st); err != nil {
			missing = append(missing, fmt.Sprintf("%q", s))
		}
	}
	if len(missing) == 0 {
		// They exist but are not usable yet (for example an invalid schema).
		for _, s := range streams {
			missing = append(missing, fmt.Sprintf("%q", s))
		}
	}
	return missing
}

func stalledMessage(stalled map[string]string) string {
	streams := make([]string, 0, len(stalled))
	for s := range stalled {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	parts := make([]string, 0, len(streams))
	for _, s := range streams {
		parts = append(parts, fmt.Sprintf("stream %s: %s", s, stalled[s]))
	}
	return "Retrying: " + strings.Join(parts, "; ")
}

// SetupWithManager registers the controller: Projections, and the Streams
// and Pipelines they reference.
func (r *ProjectionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	indexer := mgr.GetFieldIndexer()
	err := indexer.IndexField(context.Background(), &esv1.Projection{}, indexProjectionStreams, func(obj client.Object) []string {
		if p, ok := obj.(*esv1.Projection); ok {
			return p.Spec.Streams
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index projections by stream: %w", err)
	}
	err = indexer.IndexField(context.Background(), &esv1.Projection{}, indexProjectionPipeline, func(obj client.Object) []string {
		if p, ok := obj.(*esv1.Projection); ok && p.Spec.PipelineRef != nil {
			return []string{p.Spec.PipelineRef.Name}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index projections by pipeline: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&esv1.Projection{}, builder.WithPredicates(skipStatusUpdates)).
		Watches(&esv1.Stream{}, handler.EnqueueRequestsFromMapFunc(referrers(r, newProjectionList, indexProjectionStreams)),
			builder.WithPredicates(dependencyUpdates)).
		Watches(&esv1.Pipeline{}, handler.EnqueueRequestsFromMapFunc(referrers(r, newProjectionList, indexProjectionPipeline)),
			builder.WithPredicates(dependencyUpdates)).
		Named("projection")
	return r.Leadership.build(b, r, newProjectionList).Complete(r)
}
