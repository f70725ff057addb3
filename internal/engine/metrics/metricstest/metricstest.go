// Package metricstest reads series out of a Prometheus registry for tests.
package metricstest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Find returns the series of family name whose labels are exactly labels,
// nil when there is none.
func Find(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if matches(m, labels) {
				return m
			}
		}
	}
	return nil
}

// Sample is Find's series as one number: a counter's or gauge's value, a
// histogram's sample count; ok is false when there is no such series.
func Sample(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	m := Find(t, reg, name, labels)
	if m == nil {
		return 0, false
	}
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue(), true
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue(), true
	default:
		return float64(m.GetHistogram().GetSampleCount()), true
	}
}

func matches(m *dto.Metric, labels map[string]string) bool {
	if len(m.GetLabel()) != len(labels) {
		return false
	}
	for _, l := range m.GetLabel() {
		if want, ok := labels[l.GetName()]; !ok || want != l.GetValue() {
			return false
		}
	}
	return true
}
