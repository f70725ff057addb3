package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// Indexes of Reactors by the objects they reference, so that a Stream,
// Pipeline or Service appearing (or changing) reaches the Reactors that wait
// for it. The stream index holds the reply stream too.
const (
	indexReactorStreams  = "reactor.spec.streams"
	indexReactorPipeline = "reactor.spec.pipelineRef.name"
	indexReactorService  = "reactor.spec.sink.ref.name"
)

// TokenSource gives the bearer tokens the engine sends to sinks that set
// sink.audience.
type TokenSource interface {
	Token(ctx context.Context, audience string) (string, error)
}

// tokenCheckTimeout bounds the wait for a token in a reconcile.
const tokenCheckTimeout = 5 * time.Second

// ReactorReconciler applies Reactors to the engine and reports their
// progress.
type ReactorReconciler struct {
	client.Client
	Engine Engine
	// Tokens, when set, is the engine's token source: a Reactor whose
	// audience gets no token from it is reported Stalled, as its
	// deliveries fail for the same reason. Without a token source the
	// engine refuses a Reactor with an audience (InvalidSpec).
	Tokens TokenSource
	// Leadership, when set, runs the controller on every replica, writing
	// to the API server only on the leader (see Leadership). Nil: on the
	// leader only.
	Leadership *Leadership
}

// +kubebuilder:rbac:groups=eventsourcing.dev,resources=reactors,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=eventsourcing.dev,resources=reactors/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=eventsourcing.dev,resources=reactors/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch

// Sink tokens (sink.audience) are of the manager's own ServiceAccount: a
// Role in its namespace, for that account alone (config/rbac renames it
// with the account).
// +kubebuilder:rbac:groups="",namespace=system,resources=serviceaccounts/token,verbs=create,resourceNames=controller-manager

// Reconcile brings one Reactor's engine state and status up to date.
func (r *ReactorReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var rx esv1.Reactor
	return reconcileObject(ctx, r.Client, r.Leadership, req.NamespacedName, &rx,
		func(rx *esv1.Reactor) any { return rx.Status },
		func(rx *esv1.Reactor) { rx.Status.ObservedGeneration = rx.Generation },
		func(ctx context.Context) error {
			return r.Engine.RemoveReactor(ctx, engineName(req.Namespace, req.Name))
		},
		func(ctx context.Context) (ctrl.Result, error) { return r.reconcileNormal(ctx, &rx) })
}

func (r *ReactorReconciler) reconcileNormal(ctx context.Context, rx *esv1.Reactor) (ctrl.Result, error) {
	name := engineName(rx.Namespace, rx.Name)
	sinkURI, err := r.resolveSink(ctx, rx)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// The Service watch brings it back. A reactor already running is
		// left as it is: removing it would delete its checkpoint, and the
		// events meanwhile would be skipped (Latest) or delivered again
		// (Beginning); deliveries to the gone Service fail, are retried and
		// dead-lettered, where redrive can reach them.
		rx.Status.SinkURI = ""
		setReady(&rx.Status.Conditions, rx.Generation, false, ReasonSinkNotFound,
			fmt.Sprintf("Waiting for Service %q in namespace %q: create it or fix spec.sink.ref",
				rx.Spec.Sink.Ref.Name, rx.Namespace))
		return ctrl.Result{}, nil
	}
	rx.Status.SinkURI = sinkURI
	err = r.Engine.ApplyReactor(ctx, reactorSpec(rx, sinkURI))
	switch {
	case errors.Is(err, core.ErrInvalidSpec):
		setReady(&rx.Status.Conditions, rx.Generation, false, ReasonInvalidSpec, "Fix spec: "+err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	case errors.Is(err, core.ErrStreamNotFound):
		// Registered and waiting: the Stream watch brings it back.
		setReady(&rx.Status.Conditions, rx.Generation, false, ReasonStreamNotFound,
			fmt.Sprintf("Waiting for Streams %s in namespace %q: create them or fix spec.streams and spec.reply.stream",
				strings.Join(missingStreams(ctx, r.Client, rx.Namespace, reactorStreams(rx)), ", "), rx.Namespace))
		return ctrl.Result{}, nil
	case errors.Is(err, core.ErrPipelineNotFound):
		setReady(&rx.Status.Conditions, rx.Generation, false, ReasonPipelineNotFound,
			fmt.Sprintf("Waiting for Pipeline %q in namespace %q: create it or fix spec.pipelineRef",
				rx.Spec.PipelineRef.Name, rx.Namespace))
		return ctrl.Result{}, nil
	case err != nil:
		setReady(&rx.Status.Conditions, rx.Generation, false, ReasonEngineError, err.Error())
		return ctrl.Result{}, err
	}
	stats, err := r.Engine.ReactorStats(ctx, name)
	if err != nil {
		return ctrl.Result{}, err
	}
	rx.Status.EventsDelivered = int64(stats.Delivered)
	rx.Status.DeadLettered = int64(stats.DeadLettered)
	rx.Status.Lag = int64(stats.Lag)
	if stats.Stalled != "" {
		setReady(&rx.Status.Conditions, rx.Generation, false, ReasonStalled, "Retrying: "+stats.Stalled)
	} else if err := r.checkToken(ctx, rx.Spec.Sink.Audience); err != nil {
		setReady(&rx.Status.Conditions, rx.Generation, false, ReasonStalled,
			"Retrying: deliveries need a token for spec.sink.audience: "+err.Error())
	} else {
		setReady(&rx.Status.Conditions, rx.Generation, true, ReasonRunning,
			fmt.Sprintf("Delivering events to %s", sinkURI))
	}
	return ctrl.Result{RequeueAfter: StatusRefresh}, nil
}

// checkToken asks the token source for audience's token, as each delivery
// does: the answer is kept, so this costs no request while it is valid.
func (r *ReactorReconciler) checkToken(ctx context.Context, audience string) error {
	if audience == "" || r.Tokens == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, tokenCheckTimeout)
	defer cancel()
	_, err := r.Tokens.Token(ctx, audience)
	return err
}

// resolveSink gives the address events are posted to: the URI as written,
// or the cluster DNS name of the referenced Service port. A missing Service
// is a NotFound error.
func (r *ReactorReconciler) resolveSink(ctx context.Context, rx *esv1.Reactor) (string, error) {
	sink := rx.Spec.Sink
	if sink.Ref == nil {
		return sink.URI, nil
	}
	// Only its existence matters: the metadata cache is enough.
	svc := metav1.PartialObjectMetadata{}
	svc.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Service"))
	if err := r.Get(ctx, types.NamespacedName{Namespace: rx.Namespace, Name: sink.Ref.Name}, &svc); err != nil {
		return "", err
	}
	return serviceURL(sink.Ref.Name, rx.Namespace, sink.Ref.Port, sink.Path), nil
}

// serviceURL is the in-cluster address of a Service port.
func serviceURL(name, namespace string, port int32, path string) string {
	return fmt.Sprintf("http://%s.%s.svc.cluster.local:%d%s", name, namespace, port, path)
}

// reactorStreams lists the streams a Reactor reads and replies to.
func reactorStreams(rx *esv1.Reactor) []string {
	streams := append([]string(nil), rx.Spec.Streams...)
	if rx.Spec.Reply != nil {
		streams = append(streams, rx.Spec.Reply.Stream)
	}
	return streams
}

// SetupWithManager registers the controller: Reactors, and the Streams,
// Pipelines and Services they reference.
func (r *ReactorReconciler) SetupWithManager(mgr ctrl.Manager) error {
	indexer := mgr.GetFieldIndexer()
	indexes := map[string]func(*esv1.Reactor) []string{
		indexReactorStreams: reactorStreams,
		indexReactorPipeline: func(rx *esv1.Reactor) []string {
			if rx.Spec.PipelineRef == nil {
				return nil
			}
			return []string{rx.Spec.PipelineRef.Name}
		},
		indexReactorService: func(rx *esv1.Reactor) []string {
			if rx.Spec.Sink.Ref == nil {
				return nil
			}
			return []string{rx.Spec.Sink.Ref.Name}
		},
	}
	for field, f := range indexes {
		err := indexer.IndexField(context.Background(), &esv1.Reactor{}, field, func(obj client.Object) []string {
			if rx, ok := obj.(*esv1.Reactor); ok {
				return f(rx)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("index reactors by %s: %w", field, err)
		}
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&esv1.Reactor{}, builder.WithPredicates(skipStatusUpdates)).
		Watches(&esv1.Stream{}, handler.EnqueueRequestsFromMapFunc(referrers(r, newReactorList, indexReactorStreams)),
			builder.WithPredicates(dependencyUpdates)).
		Watches(&esv1.Pipeline{}, handler.EnqueueRequestsFromMapFunc(referrers(r, newReactorList, indexReactorPipeline)),
			builder.WithPredicates(dependencyUpdates)).
		WatchesMetadata(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(referrers(r, newReactorList, indexReactorService))).
		Named("reactor")
	return r.Leadership.build(b, r, newReactorList).Complete(r)
}
