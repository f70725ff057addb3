package controller

import (
	"context"
	"errors"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

// PipelineReconciler applies Pipelines to the engine, which re-wires the
// projections that use them, live.
type PipelineReconciler struct {
	client.Client
	Engine Engine
	// Leadership, when set, runs the controller on every replica, writing
	// to the API server only on the leader (see Leadership). Nil: on the
	// leader only.
	Leadership *Leadership
}

// +kubebuilder:rbac:groups=eventsourcing.dev,resources=pipelines,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=eventsourcing.dev,resources=pipelines/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=eventsourcing.dev,resources=pipelines/finalizers,verbs=update

// Reconcile brings one Pipeline's engine state and status up to date.
func (r *PipelineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p esv1.Pipeline
	return reconcileObject(ctx, r.Client, r.Leadership, req.NamespacedName, &p,
		func(p *esv1.Pipeline) any { return p.Status },
		func(p *esv1.Pipeline) { p.Status.ObservedGeneration = p.Generation },
		func(context.Context) error {
			r.Engine.RemovePipeline(engineName(req.Namespace, req.Name))
			return nil
		},
		func(context.Context) (ctrl.Result, error) { return r.reconcileNormal(&p) })
}

func (r *PipelineReconciler) reconcileNormal(p *esv1.Pipeline) (ctrl.Result, error) {
	if err := r.Engine.ApplyPipeline(pipelineSpec(p)); err != nil {
		if errors.Is(err, core.ErrInvalidSpec) {
			// The engine keeps the last good version of the pipeline.
			setReady(&p.Status.Conditions, p.Generation, false, ReasonInvalidSpec, "Fix spec: "+err.Error())
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		setReady(&p.Status.Conditions, p.Generation, false, ReasonEngineError, err.Error())
		return ctrl.Result{}, err
	}
	setReady(&p.Status.Conditions, p.Generation, true, ReasonApplied,
		"Built; projections that use it run through this version")
	return ctrl.Result{}, nil
}

// SetupWithManager registers the controller.
func (r *PipelineReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).For(&esv1.Pipeline{}, builder.WithPredicates(skipStatusUpdates)).Named("pipeline")
	return r.Leadership.build(b, r, newPipelineList).Complete(r)
}
