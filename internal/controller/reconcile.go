package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// reconcileObject runs the steps every reconciler shares, on the object at
// key read into obj. A deleted object is removed from the engine, then its
// finalizer is dropped. Otherwise the finalizer is ensured (that update ends
// the pass), and normal runs with one status patch at the end:
// observedGeneration moves when the pass reached a verdict on the spec, and
// nothing is written when the status did not change.
//
// With a Leadership (reconcilers on every replica), a replica that does not
// lead applies and removes specs alike but writes nothing: the leader adds
// and drops finalizers and writes status. An object that is gone is removed
// from the engine too: a replica that does not hold it with a finalizer may
// never see it deleting.
func reconcileObject[T client.Object](
	ctx context.Context, c client.Client, lead *Leadership, key types.NamespacedName, obj T,
	status func(T) any, observe func(T),
	remove func(context.Context) error,
	normal func(context.Context) (ctrl.Result, error),
) (result ctrl.Result, retErr error) {
	if err := c.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) && lead != nil {
			return ctrl.Result{}, remove(ctx)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	leading := lead.Leading()
	if !obj.GetDeletionTimestamp().IsZero() {
		if err := remove(ctx); err != nil || !leading {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, removeFinalizer(ctx, c, obj)
	}
	if !leading {
		// Its status is not this replica's to refresh: watches bring the
		// object back when it changes, and the resync once elected.
		_, err := normal(ctx)
		return ctrl.Result{}, err
	}
	if added, err := ensureFinalizer(ctx, c, obj); added || err != nil {
		return ctrl.Result{}, err
	}
	orig, ok := obj.DeepCopyObject().(T)
	if !ok {
		return ctrl.Result{}, fmt.Errorf("copy %T", obj)
	}
	defer func() {
		if settled(retErr) {
			observe(obj)
		}
		if err := patchStatus(ctx, c, obj, status(orig), status(obj)); err != nil {
			// The error brings the object back with backoff; a RequeueAfter
			// beside it would be ignored (and warned about).
			result, retErr = ctrl.Result{}, errors.Join(retErr, err)
		}
	}()
	return normal(ctx)
}

// ensureFinalizer adds the engine finalizer, reporting whether it had to (the
// pass then ends: the update triggers the next one).
func ensureFinalizer(ctx context.Context, c client.Client, obj client.Object) (bool, error) {
	if controllerutil.ContainsFinalizer(obj, finalizer) {
		return false, nil
	}
	orig, ok := obj.DeepCopyObject().(client.Object)
	if !ok {
		return false, fmt.Errorf("copy %T", obj)
	}
	controllerutil.AddFinalizer(obj, finalizer)
	if err := c.Patch(ctx, obj, client.MergeFrom(orig)); err != nil {
		return false, fmt.Errorf("add finalizer: %w", err)
	}
	return true, nil
}

// removeFinalizer lets the API server finish deleting obj, once the engine
// has let go of it.
func removeFinalizer(ctx context.Context, c client.Client, obj client.Object) error {
	if !controllerutil.ContainsFinalizer(obj, finalizer) {
		return nil
	}
	orig, ok := obj.DeepCopyObject().(client.Object)
	if !ok {
		return fmt.Errorf("copy %T", obj)
	}
	controllerutil.RemoveFinalizer(obj, finalizer)
	if err := c.Patch(ctx, obj, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	return nil
}

// patchStatus writes obj's status when it differs from origStatus, so a
// pass that changed nothing writes nothing. It sends the whole status as a
// merge patch: a patch computed from the difference would leave out fields
// that stayed 0, and printer columns would show them empty instead of 0.
func patchStatus(ctx context.Context, c client.Client, obj client.Object, origStatus, status any) error {
	if equality.Semantic.DeepEqual(origStatus, status) {
		return nil
	}
	data, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	if err := c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, data)); err != nil {
		return fmt.Errorf("patch status: %w", err)
	}
	return nil
}

// setReady sets the Ready condition for obj's current generation.
func setReady(conditions *[]metav1.Condition, generation int64, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conditions, metav1.Condition{
		Type:               ConditionReady,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: generation,
	})
}

// settled reports whether a pass that ended with err reached a verdict on the
// spec (success, or a spec the user must fix), so observedGeneration may move.
func settled(err error) bool {
	return err == nil || errors.Is(err, reconcile.TerminalError(nil))
}

// referrers maps a referenced object to the objects, listed with newList,
// whose index field names it in the same namespace: what a Projection,
// Reactor or Stream must reconcile again when a Stream, Pipeline, Service
// or ConfigMap it names changes.
func referrers(c client.Client, newList func() client.ObjectList, index string) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		list := newList()
		if err := c.List(ctx, list, client.InNamespace(obj.GetNamespace()),
			client.MatchingFields{index: obj.GetName()}); err != nil {
			return nil
		}
		return requestsFor(list)
	}
}

// requestsFor gives a request for each object of list.
func requestsFor(list client.ObjectList) []reconcile.Request {
	var reqs []reconcile.Request
	_ = meta.EachListItem(list, func(item runtime.Object) error {
		if o, ok := item.(client.Object); ok {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		}
		return nil
	})
	return reqs
}

func newPipelineList() client.ObjectList   { return &esv1.PipelineList{} }
func newProjectionList() client.ObjectList { return &esv1.ProjectionList{} }
func newReactorList() client.ObjectList    { return &esv1.ReactorList{} }
func newStreamList() client.ObjectList     { return &esv1.StreamList{} }
