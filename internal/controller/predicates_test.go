package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

func TestStatusUpdatesAreSkippedAndWhatAPassActsOnIsKept(t *testing.T) {
	old := &esv1.Stream{ObjectMeta: metav1.ObjectMeta{Name: "s", Generation: 2, ResourceVersion: "10"}}
	old.Status.Conditions = []metav1.Condition{{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonActive}}
	update := func(change func(*esv1.Stream)) event.UpdateEvent {
		updated := old.DeepCopy()
		updated.ResourceVersion = "11"
		change(updated)
		return event.UpdateEvent{ObjectOld: old, ObjectNew: updated}
	}
	own, dependency := skipStatusUpdates, dependencyUpdates
	for _, c := range []struct {
		name                string
		change              func(*esv1.Stream)
		keepOwn, keepDepend bool
	}{
		{"counters", func(s *esv1.Stream) { s.Status.LastSequence = 42 }, false, false},
		{"spec", func(s *esv1.Stream) { s.Generation = 3 }, true, true},
		{"finalizer", func(s *esv1.Stream) { s.Finalizers = []string{"eventsourcing.dev/engine"} }, true, true},
		{"deletion", func(s *esv1.Stream) { now := metav1.Now(); s.DeletionTimestamp = &now }, true, true},
		{"annotation", func(s *esv1.Stream) { s.Annotations = map[string]string{"a": "b"} }, true, true},
		{"not ready", func(s *esv1.Stream) {
			s.Status.Conditions = []metav1.Condition{{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonInvalidSchema}}
		}, false, true},
	} {
		e := update(c.change)
		if got := own.Update(e); got != c.keepOwn {
			t.Errorf("%s: the kind's own controller keeps it = %v, want %v", c.name, got, c.keepOwn)
		}
		if got := dependency.Update(e); got != c.keepDepend {
			t.Errorf("%s: a dependent kind's controller keeps it = %v, want %v", c.name, got, c.keepDepend)
		}
	}
}
