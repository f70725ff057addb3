package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

func TestStreamRetentionReachesTheEngine(t *testing.T) {
	maxEvents := int64(500)
	cases := map[string]struct {
		retention *esv1.StreamRetention
		want      core.Retention
	}{
		"none keeps everything": {nil, core.Retention{}},
		"by count":              {&esv1.StreamRetention{MaxEvents: &maxEvents}, core.Retention{MaxEvents: 500}},
		"by age": {
			&esv1.StreamRetention{MaxAge: &metav1.Duration{Duration: 720 * time.Hour}},
			core.Retention{MaxAge: 720 * time.Hour},
		},
		"by both": {
			&esv1.StreamRetention{MaxEvents: &maxEvents, MaxAge: &metav1.Duration{Duration: time.Hour}},
			core.Retention{MaxEvents: 500, MaxAge: time.Hour},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := &esv1.Stream{ObjectMeta: metav1.ObjectMeta{Name: "items", Namespace: "shop"}}
			s.Spec.Retention = c.retention
			if got := streamSpec(s, nil, "dead").Retention; got != c.want {
				t.Fatalf("engine retention: got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestProjectionReduceReachesTheEngine(t *testing.T) {
	p := &esv1.Projection{ObjectMeta: metav1.ObjectMeta{Name: "totals", Namespace: "shop"}}
	p.Spec.Streams = []string{"orders"}
	p.Spec.ReadModel = esv1.ReadModel{Type: esv1.ReadModelReduce, KeyExpression: "event.key",
		Reduce: &esv1.ReduceReadModel{Initial: "{'total': 0}", Expression: "{'total': state.total + 1}"}}
	got := projectionSpec(p)
	want := projection.Reducer{Initial: "{'total': 0}", Expression: "{'total': state.total + 1}"}
	if got.Type != projection.Reduce || got.Reducer != want {
		t.Fatalf("engine spec: got type %q, reducer %+v; want Reduce with the object's expressions", got.Type, got.Reducer)
	}
}
