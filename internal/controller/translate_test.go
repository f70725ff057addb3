package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
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
