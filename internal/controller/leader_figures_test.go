package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
)

// A status the leader has not written yet (no Ready condition) gives no
// figures: its zeros would read as counted, not as unknown.
func TestFiguresComeOnlyFromAStatusTheLeaderHasWritten(t *testing.T) {
	if _, ok := figures(0, 0, nil); ok {
		t.Error("figures of a status without a Ready condition")
	}
	f, ok := figures(5, 2, []metav1.Condition{{Type: ConditionReady, Status: metav1.ConditionFalse}})
	if !ok || f != (httpapi.Figures{Handled: 5, DeadLettered: 2, Ready: false}) {
		t.Errorf("figures = %+v, %v; want 5 handled, 2 dead-lettered, not ready", f, ok)
	}
}
