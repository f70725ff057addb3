package core_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics/metricstest"
)

func newMetrics(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// waitSample waits for the series to have the value want.
func waitSample(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	enginetest.Eventually(t, fmt.Sprintf("%s%v to be %g", name, labels, want), func() (bool, string) {
		v, ok := metricstest.Sample(t, reg, name, labels)
		return ok && v == want, fmt.Sprintf("got %g (present: %t)", v, ok)
	})
}

func TestGaugesReportStreamSizesAndLagAndForgetWhatIsRemoved(t *testing.T) {
	m, reg := newMetrics(t)
	e := startEngine(t, core.Config{Metrics: m, StatsInterval: 10 * time.Millisecond})
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPaid"})
	mustApplyProjection(t, e, appendProjection("shop/totals", "shop/orders"))
	// A projection waiting for its pipeline falls behind by every event.
	waiting := appendProjection("shop/later", "shop/orders")
	waiting.Pipeline = "not-yet"
	if err := e.ApplyProjection(context.Background(), waiting); !errors.Is(err, core.ErrPipelineNotFound) {
		t.Fatalf("ApplyProjection with a missing pipeline: got %v, want ErrPipelineNotFound", err)
	}
	ingestJSON(t, e, "shop/orders", `{"n":1}`, `{"n":2}`, `{"n":3}`)

	waitSample(t, reg, "eventsourcing_stream_events", map[string]string{"namespace": "shop", "stream": "orders"}, 3)
	waitSample(t, reg, "eventsourcing_handler_lag", map[string]string{"handler": "shop/later"}, 3)
	waitSample(t, reg, "eventsourcing_handler_lag", map[string]string{"handler": "shop/totals"}, 0)
	waitSample(t, reg, "eventsourcing_outbox_depth", nil, 0)

	if err := e.RemoveProjection(context.Background(), "shop/later"); err != nil {
		t.Fatal(err)
	}
	e.RemoveStream("shop/orders")
	time.Sleep(50 * time.Millisecond) // several refreshes, none of which may bring the series back
	if _, ok := metricstest.Sample(t, reg, "eventsourcing_handler_lag", map[string]string{"handler": "shop/later"}); ok {
		t.Error("the removed projection's lag is still reported")
	}
	if _, ok := metricstest.Sample(t, reg, "eventsourcing_stream_events", map[string]string{"namespace": "shop", "stream": "orders"}); ok {
		t.Error("the removed stream's size is still reported")
	}
}

// A handler's queue on a stream goes with the stream, or with the handler,
// whichever goes first: no queue-depth series outlives either.
func TestQueueDepthSeriesGoWithTheirStreamOrHandler(t *testing.T) {
	m, reg := newMetrics(t)
	e := startEngine(t, core.Config{Metrics: m, StatsInterval: 10 * time.Millisecond})
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPaid"})
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/refunds", DefaultEventName: "Refunded"})
	mustApplyProjection(t, e, appendProjection("shop/totals", "shop/orders", "shop/refunds"))
	mustApplyProjection(t, e, appendProjection("shop/audit", "shop/refunds"))
	queue := func(stream, subscriber string) map[string]string {
		return map[string]string{"stream": stream, "subscriber": subscriber}
	}
	waitSample(t, reg, "eventsourcing_queue_depth", queue("shop/orders", "shop/totals"), 0)
	waitSample(t, reg, "eventsourcing_queue_depth", queue("shop/refunds", "shop/audit"), 0)

	e.RemoveStream("shop/orders")
	if err := e.RemoveProjection(context.Background(), "shop/audit"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // several refreshes, none of which may bring the series back
	for _, gone := range []map[string]string{queue("shop/orders", "shop/totals"), queue("shop/refunds", "shop/audit")} {
		if v, ok := metricstest.Sample(t, reg, "eventsourcing_queue_depth", gone); ok {
			t.Errorf("eventsourcing_queue_depth%v = %g: reported after its stream or handler was removed", gone, v)
		}
	}
}

// refusingStore refuses appends while refuse is set, so accepted events
// stay in the outbox.
type refusingStore struct {
	eventstore.Store
	refuse atomic.Bool
}

func (s *refusingStore) Append(
	ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []engine.Message,
) (eventstore.AppendResult, error) {
	if s.refuse.Load() {
		return eventstore.AppendResult{}, errors.New("refused by the test")
	}
	return s.Store.Append(ctx, stream, expected, events)
}

func TestOutboxGaugesReportWhatWaitsAndSinceWhen(t *testing.T) {
	m, reg := newMetrics(t)
	store := &refusingStore{Store: eventstore.NewMemory()}
	store.refuse.Store(true)
	t.Cleanup(func() { store.refuse.Store(false) }) // before the engine drains its outbox
	e := startEngine(t, core.Config{Metrics: m, Store: store, StatsInterval: 10 * time.Millisecond})
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPaid"})
	ingestJSON(t, e, "shop/orders", `{"n":1}`, `{"n":2}`)

	waitSample(t, reg, "eventsourcing_outbox_depth", nil, 2)
	enginetest.Eventually(t, "the oldest entry's age to pass 20ms", func() (bool, string) {
		age, _ := metricstest.Sample(t, reg, "eventsourcing_outbox_oldest_age_seconds", nil)
		return age >= 0.02, fmt.Sprintf("age %gs", age)
	})

	store.refuse.Store(false)
	waitSample(t, reg, "eventsourcing_outbox_depth", nil, 0)
	waitSample(t, reg, "eventsourcing_outbox_oldest_age_seconds", nil, 0)
	if n, _ := metricstest.Sample(t, reg, "eventsourcing_processor_batch_size", nil); n == 0 {
		t.Error("no processor batch observed")
	}
}

func TestAReactorsRetriesAndEachDeliveryAttemptAreCounted(t *testing.T) {
	m, reg := newMetrics(t)
	e := startEngine(t, core.Config{Metrics: m, AllowPrivateSinks: true})
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPaid"})
	sink := newSink(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mustApplyReactor(t, e, core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL, Pipeline: fastRetry(t, e, 3),
	})
	ingestShopOrders(t, e, core.Event{Payload: []byte(`{"id":1}`)})
	waitReactor(t, e, "shop/ship", func(s core.ReactorStats) bool { return s.Delivered == 1 })

	handler := map[string]string{"handler": core.ReactorHandlerName("shop/ship")}
	waitSample(t, reg, "eventsourcing_retries_total", handler, 1)
	waitSample(t, reg, "eventsourcing_delivery_duration_seconds", handler, 2)

	if err := e.RemoveReactor(context.Background(), "shop/ship"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"eventsourcing_retries_total", "eventsourcing_delivery_duration_seconds"} {
		if _, ok := metricstest.Sample(t, reg, name, handler); ok {
			t.Errorf("%s: the removed reactor's series is still there", name)
		}
	}
}
