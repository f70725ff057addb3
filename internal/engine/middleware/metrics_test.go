package middleware

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// valueOf reads a counter or gauge. (prometheus/testutil would pull one more
// module into go.mod for this.)
func valueOf(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatalf("write metric: %v", err)
	}
	if c := out.GetCounter(); c != nil {
		return c.GetValue()
	}
	return out.GetGauge().GetValue()
}

// collectAndCount counts the series c has.
func collectAndCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}

// gatherAndCount counts the series of the named family in reg.
func gatherAndCount(reg prometheus.Gatherer, name string) (int, error) {
	families, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() == name {
			return len(f.GetMetric()), nil
		}
	}
	return 0, nil
}

func newTestMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	return m, reg
}

func TestNewMetricsRegistersEveryCollector(t *testing.T) {
	m, reg := newTestMetrics(t)
	// Vectors only show up once they have a series.
	_, _ = m.Middleware("p")(noopHandler).Handle(context.Background(), testMessage())
	m.deadLettered.WithLabelValues("p", "items").Inc()
	m.SetQueueDepth("items", "p", 1)

	for _, name := range []string{
		"eventsourcing_handled_total",
		"eventsourcing_handler_duration_seconds",
		"eventsourcing_dead_lettered_total",
		"eventsourcing_queue_depth",
	} {
		if n, err := gatherAndCount(reg, name); err != nil || n == 0 {
			t.Errorf("%s: got %d series (error %v), want some", name, n, err)
		}
	}
}

func TestMetricsCountsEachResult(t *testing.T) {
	tests := []struct {
		err        error
		wantResult string
	}{
		{nil, "success"},
		{engine.ErrSkip, "skipped"},
		{errBoom, "error"},
		{fmt.Errorf("sent: %w", engine.ErrDeadLettered), "dead_lettered"},
	}
	for _, tt := range tests {
		t.Run(tt.wantResult, func(t *testing.T) {
			m, _ := newTestMetrics(t)
			h := m.Middleware("items-projection")(newScriptedHandler(tt.err))

			if _, err := h.Handle(context.Background(), testMessage()); err != tt.err {
				t.Fatalf("Handle: got error %v, want %v unchanged", err, tt.err)
			}
			for _, result := range []string{"success", "skipped", "error", "dead_lettered"} {
				want := 0.0
				if result == tt.wantResult {
					want = 1
				}
				if got := valueOf(t, m.handled.WithLabelValues("items-projection", result)); got != want {
					t.Errorf("handled_total{result=%q}: got %v, want %v", result, got, want)
				}
			}
			if got := collectAndCount(m.duration); got != 1 {
				t.Errorf("duration series: got %d, want 1", got)
			}
		})
	}
}

func TestMetricsObservesOneDurationPerMessage(t *testing.T) {
	m, reg := newTestMetrics(t)
	h := m.Middleware("p")(noopHandler)
	for range 3 {
		_, _ = h.Handle(context.Background(), testMessage())
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == "eventsourcing_handler_duration_seconds" {
			if got := f.GetMetric()[0].GetHistogram().GetSampleCount(); got != 3 {
				t.Errorf("duration sample count: got %d, want 3", got)
			}
			return
		}
	}
	t.Error("eventsourcing_handler_duration_seconds not gathered")
}

func TestMetricsCountsDeadLettersByOriginStream(t *testing.T) {
	m, _ := newTestMetrics(t)
	h := m.Middleware("p")(newScriptedHandler(fmt.Errorf("sent: %w", engine.ErrDeadLettered)))
	msg := testMessage()
	_, _ = h.Handle(context.Background(), msg)
	_, _ = h.Handle(context.Background(), msg)

	if got := valueOf(t, m.deadLettered.WithLabelValues("p", msg.Stream)); got != 2 {
		t.Errorf("dead_lettered_total{stream=%q}: got %v, want 2", msg.Stream, got)
	}
}

func TestNewMetricsReusesCollectorsAlreadyRegistered(t *testing.T) {
	m1, reg := newTestMetrics(t)
	m2, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("second NewMetrics on one registry: got error %v, want nil", err)
	}
	_, _ = m2.Middleware("p")(noopHandler).Handle(context.Background(), testMessage())
	m2.SetQueueDepth("items", "p", 4)

	if got := valueOf(t, m1.handled.WithLabelValues("p", "success")); got != 1 {
		t.Errorf("count seen through the first Metrics: got %v, want 1", got)
	}
	if got := valueOf(t, m1.queueDepth.WithLabelValues("items", "p")); got != 4 {
		t.Errorf("queue depth seen through the first Metrics: got %v, want 4", got)
	}
}

func TestNewMetricsRejectsConflictingCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "eventsourcing_handled_total", Help: "other"}))

	if _, err := NewMetrics(reg); err == nil {
		t.Error("NewMetrics with a conflicting collector: got nil error, want one")
	}
}

func TestNewMetricsWithNilRegistererRegistersNothing(t *testing.T) {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatalf("NewMetrics(nil): %v", err)
	}
	_, _ = m.Middleware("p")(noopHandler).Handle(context.Background(), testMessage())
	if got := valueOf(t, m.handled.WithLabelValues("p", "success")); got != 1 {
		t.Errorf("handled_total: got %v, want 1", got)
	}
}

func TestMetricsForgetHandlerDeletesOnlyItsSeries(t *testing.T) {
	m, reg := newTestMetrics(t)
	dead := fmt.Errorf("sent: %w", engine.ErrDeadLettered)
	for _, handler := range []string{"gone", "kept"} {
		h := m.Middleware(handler)(newScriptedHandler(nil, dead))
		_, _ = h.Handle(context.Background(), testMessage())
		_, _ = h.Handle(context.Background(), testMessage())
	}

	m.ForgetHandler("gone")

	want := map[string]int{
		"eventsourcing_handled_total":            4, // kept: four results
		"eventsourcing_handler_duration_seconds": 1,
		"eventsourcing_dead_lettered_total":      1,
	}
	for name, n := range want {
		if got, err := gatherAndCount(reg, name); err != nil || got != n {
			t.Errorf("%s: got %d series (error %v), want %d", name, got, err, n)
		}
	}
}

func TestMetricsQueueDepthIsSetAndDeleted(t *testing.T) {
	m, _ := newTestMetrics(t)
	m.SetQueueDepth("items", "p", 3)
	m.SetQueueDepth("items", "p", 9)
	if got := valueOf(t, m.queueDepth.WithLabelValues("items", "p")); got != 9 {
		t.Errorf("queue depth: got %v, want 9", got)
	}
	m.DeleteQueueDepth("items", "p")
	if got := collectAndCount(m.queueDepth); got != 0 {
		t.Errorf("queue depth series after delete: got %d, want 0", got)
	}
}

func TestMetricsSuccessPathDoesNotAllocate(t *testing.T) {
	m, _ := newTestMetrics(t)
	h := m.Middleware("p")(noopHandler)
	msg := testMessage()
	ctx := context.Background()
	if allocs := testing.AllocsPerRun(100, func() { _, _ = h.Handle(ctx, msg) }); allocs != 0 {
		t.Errorf("allocations per message: got %v, want 0", allocs)
	}
}

func TestRecordDeadLetterCountsTheResultAndTheOriginStream(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.RecordDeadLetter("p", "s")
	m.RecordDeadLetter("p", "s")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			if c := metric.GetCounter(); c != nil {
				got[f.GetName()] += c.GetValue()
			}
		}
	}
	if got["eventsourcing_dead_lettered_total"] != 2 || got["eventsourcing_handled_total"] != 2 {
		t.Fatalf("counters = %v, want 2 dead-lettered and 2 handled", got)
	}
}
