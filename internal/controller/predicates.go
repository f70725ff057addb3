package controller

import (
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// A pass writes its object's status, and the API server sends that write
// back as an update. Acted on, it would start the next pass at once; while
// counters move (every event ingested or delivered) each pass writes new
// ones, and the object would be reconciled, patched and sent back as fast
// as the API server answers, instead of every StatusRefresh.

// skipStatusUpdates keeps the updates of a reconciled kind that a pass acts
// on: its spec (generation), deletion, finalizers, labels and annotations.
var skipStatusUpdates = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return !onlyStatusChanged(e.ObjectOld, e.ObjectNew)
}}

// dependencyUpdates keeps the updates of a Stream or Pipeline that concern
// the kinds referring to it: those skipStatusUpdates keeps, and a change of
// its Ready condition (a dependent waiting for it starts), not of its
// counters.
var dependencyUpdates = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return !onlyStatusChanged(e.ObjectOld, e.ObjectNew) || readyChanged(e.ObjectOld, e.ObjectNew)
}}

func onlyStatusChanged(old, updated client.Object) bool {
	return old.GetGeneration() != 0 && old.GetGeneration() == updated.GetGeneration() &&
		old.GetDeletionTimestamp().Equal(updated.GetDeletionTimestamp()) &&
		slices.Equal(old.GetFinalizers(), updated.GetFinalizers()) &&
		maps.Equal(old.GetLabels(), updated.GetLabels()) &&
		maps.Equal(old.GetAnnotations(), updated.GetAnnotations())
}

func readyChanged(old, updated client.Object) bool {
	a, b := readyOf(old), readyOf(updated)
	if a == nil || b == nil {
		return a != b
	}
	return a.Status != b.Status || a.Reason != b.Reason || a.ObservedGeneration != b.ObservedGeneration
}

func readyOf(obj client.Object) *metav1.Condition {
	switch o := obj.(type) {
	case *esv1.Stream:
		return meta.FindStatusCondition(o.Status.Conditions, ConditionReady)
	case *esv1.Pipeline:
		return meta.FindStatusCondition(o.Status.Conditions, ConditionReady)
	}
	return nil
}
