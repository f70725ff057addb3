package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

// indexDescriptorSetConfigMap indexes Streams by the ConfigMap holding their
// protobuf descriptor set, so a ConfigMap change reaches its Streams.
const indexDescriptorSetConfigMap = "spec.schemas.protobuf.descriptorSetRef.name"

// StreamReconciler applies Streams to the engine and reports their progress.
type StreamReconciler struct {
	client.Client
	Engine Engine
	// DeadLetterStream is the manager's --dead-letter-stream, used by
	// Streams that name none.
	DeadLetterStream string
	// ConfigMaps reads descriptor-set ConfigMaps uncached (the manager's
	// API reader): the controller watches only their metadata, so it does not
	// hold every ConfigMap of the cluster in memory. Nil means the client.
	ConfigMaps client.Reader
	// Leadership, when set, runs the controller on every replica, writing
	// to the API server only on the leader (see Leadership). Nil: on the
	// leader only.
	Leadership *Leadership
}

// +kubebuilder:rbac:groups=eventsourcing.dev,resources=streams,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=eventsourcing.dev,resources=streams/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=eventsourcing.dev,resources=streams/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch

// Reconcile brings one Stream's engine state and status up to date.
func (r *StreamReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var s esv1.Stream
	return reconcileObject(ctx, r.Client, r.Leadership, req.NamespacedName, &s,
		func(s *esv1.Stream) any { return s.Status },
		func(s *esv1.Stream) { s.Status.ObservedGeneration = s.Generation },
		func(context.Context) error {
			r.Engine.RemoveStream(engineName(req.Namespace, req.Name))
			return nil
		},
		func(ctx context.Context) (ctrl.Result, error) { return r.reconcileNormal(ctx, &s) })
}

func (r *StreamReconciler) reconcileNormal(ctx context.Context, s *esv1.Stream) (ctrl.Result, error) {
	descriptorSet, problem, err := r.descriptorSet(ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	if problem != "" {
		// The ConfigMap watch brings the Stream back when it appears.
		setReady(&s.Status.Conditions, s.Generation, false, ReasonDescriptorSetNotFound, problem)
		return ctrl.Result{}, nil
	}
	if err := r.Engine.ApplyStream(streamSpec(s, descriptorSet, r.DeadLetterStream)); err != nil {
		reason := ReasonInvalidSpec
		if errors.Is(err, serde.ErrInvalidSchema) || errors.Is(err, serde.ErrUnsupportedContentType) {
			reason = ReasonInvalidSchema
		}
		if errors.Is(err, core.ErrInvalidSpec) {
			setReady(&s.Status.Conditions, s.Generation, false, reason, "Fix spec: "+err.Error())
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		setReady(&s.Status.Conditions, s.Generation, false, ReasonEngineError, err.Error())
		return ctrl.Result{}, err
	}
	s.Status.IngestPath = fmt.Sprintf("/v1/namespaces/%s/streams/%s/events", s.Namespace, s.Name)
	stats, err := r.Engine.StreamStats(ctx, engineName(s.Namespace, s.Name))
	if err != nil {
		return ctrl.Result{}, err
	}
	s.Status.LastSequence = int64(stats.LastSequence)
	s.Status.Subscribers = int32(stats.Subscribers)
	accepted := make([]string, 0, len(s.Spec.ContentTypes))
	for _, ct := range s.Spec.ContentTypes {
		accepted = append(accepted, string(ct))
	}
	if len(accepted) == 0 {
		accepted = append(accepted, serde.JSON)
	}
	setReady(&s.Status.Conditions, s.Generation, true, ReasonActive,
		fmt.Sprintf("Accepting %s at %s", strings.Join(accepted, ", "), s.Status.IngestPath))
	return ctrl.Result{RequeueAfter: StatusRefresh}, nil
}

// descriptorSet reads the protobuf descriptor set a Stream references. A
// missing ConfigMap or key is a problem for the user to fix, reported as a
// message; other errors are returned to be retried.
func (r *StreamReconciler) descriptorSet(ctx context.Context, s *esv1.Stream) ([]byte, string, error) {
	if s.Spec.Schemas == nil || s.Spec.Schemas.Protobuf == nil || s.Spec.Schemas.Protobuf.DescriptorSetRef == nil {
		return nil, "", nil
	}
	ref := s.Spec.Schemas.Protobuf.DescriptorSetRef
	reader := r.ConfigMaps
	if reader == nil {
		reader = r.Client
	}
	var cm corev1.ConfigMap
	err := reader.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: ref.Name}, &cm)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Sprintf("ConfigMap %q with the protobuf descriptor set does not exist in namespace %q: "+
			"create it with the serialized FileDescriptorSet under binaryData key %q", ref.Name, s.Namespace, ref.Key), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read ConfigMap %q: %w", ref.Name, err)
	}
	if b, ok := cm.BinaryData[ref.Key]; ok {
		return b, "", nil
	}
	return nil, fmt.Sprintf("ConfigMap %q has no binaryData key %q: put the serialized FileDescriptorSet there "+
		"(protoc --descriptor_set_out=... --include_imports)", ref.Name, ref.Key), nil
}

// SetupWithManager registers the controller: Streams, and the ConfigMaps
// they take descriptor sets from.
func (r *StreamReconciler) SetupWithManager(mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &esv1.Stream{}, indexDescriptorSetConfigMap,
		func(obj client.Object) []string {
			s, ok := obj.(*esv1.Stream)
			if !ok || s.Spec.Schemas == nil || s.Spec.Schemas.Protobuf == nil || s.Spec.Schemas.Protobuf.DescriptorSetRef == nil {
				return nil
			}
			return []string{s.Spec.Schemas.Protobuf.DescriptorSetRef.Name}
		})
	if err != nil {
		return fmt.Errorf("index streams by descriptor-set ConfigMap: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&esv1.Stream{}, builder.WithPredicates(skipStatusUpdates)).
		Watches(&corev1.ConfigMap{},
			handler.EnqueueRequestsFromMapFunc(referrers(r, newStreamList, indexDescriptorSetConfigMap)), builder.OnlyMetadata).
		Named("stream")
	return r.Leadership.build(b, r, newStreamList).Complete(r)
}
