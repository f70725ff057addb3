package metrics_test

import (
	"context"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics"
)

func newMetrics(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, reg
}

// series returns the series of the named family as "label=value,..."
// strings mapped to their value (a histogram's: its sample count).
func series(t *testing.T, reg prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			out[labelString(m)] = value(m)
		}
	}
	return out
}

func labelString(m *dto.Metric) string {
	parts := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

func TestIngestCountsEachCodeOfAStreamUnderItsNamespaceAndName(t *testing.T) {
	m, reg := newMetrics(t)
	m.AddStream("shop/orders")
	in := m.Ingest("shop", "orders")
	in.Observe(http.StatusAccepted, time.Millisecond, 100)
	in.Observe(http.StatusAccepted, time.Millisecond, 200)
	in.Observe(http.StatusBadRequest, time.Millisecond, -1)

	want := map[string]float64{
		"code=202,namespace=shop,stream=orders": 2,
		"code=400,namespace=shop,stream=orders": 1,
	}
	if got := series(t, reg, "eventsourcing_ingest_requests_total"); !maps.Equal(got, want) {
		t.Errorf("requests: got %v, want %v", got, want)
	}
	if got := series(t, reg, "eventsourcing_ingest_duration_seconds"); got["namespace=shop,stream=orders"] != 3 {
		t.Errorf("durations: got %v, want 3 observations", got)
	}
	// A body of unknown size is not observed.
	if got := series(t, reg, "eventsourcing_ingest_request_bytes"); got["namespace=shop,stream=orders"] != 2 {
		t.Errorf("body sizes: got %v, want 2 observations", got)
	}
}

// Names in a request's path are the client's to choose: a stream the
// engine does not have must not become a label value.
func TestIngestOfAStreamTheEngineDoesNotHaveCountsUnderEmptyLabels(t *testing.T) {
	m, reg := newMetrics(t)
	if got := series(t, reg, "eventsourcing_ingest_requests_total"); len(got) != 0 {
		t.Fatalf("before any request: got %v, want no series", got)
	}
	m.Ingest("anyone", "made-this-up").Observe(http.StatusNotFound, time.Millisecond, 10)
	m.Ingest("someone", "else").Observe(http.StatusNotFound, time.Millisecond, 10)

	want := map[string]float64{"code=404,namespace=,stream=": 2}
	if got := series(t, reg, "eventsourcing_ingest_requests_total"); !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestForgetStreamDeletesItsSeriesAndALateRequestDoesNotBringThemBack(t *testing.T) {
	m, reg := newMetrics(t)
	m.AddStream("shop/orders")
	m.AddStream("shop/refunds")
	inFlight := m.Ingest("shop", "orders")
	inFlight.Observe(http.StatusAccepted, time.Millisecond, 1)
	m.SetStreamEvents("shop/orders", 7)
	m.SetStreamEvents("shop/refunds", 1)

	m.ForgetStream("shop/orders")
	inFlight.Observe(http.StatusConflict, time.Millisecond, 1)

	for _, name := range []string{
		"eventsourcing_ingest_requests_total",
		"eventsourcing_ingest_duration_seconds",
		"eventsourcing_ingest_request_bytes",
		"eventsourcing_stream_events",
	} {
		for s := range series(t, reg, name) {
			if strings.Contains(s, "stream=orders") {
				t.Errorf("%s: series %s left after ForgetStream", name, s)
			}
		}
	}
	if got := series(t, reg, "eventsourcing_stream_events"); got["namespace=shop,stream=refunds"] != 1 {
		t.Errorf("the other stream's series: got %v, want refunds kept", got)
	}
	if got := m.Ingest("shop", "orders"); got == inFlight {
		t.Error("a forgotten stream still has its ingest series")
	}
}

func TestCommitsReportTheFsyncOnlyOfStorageThatSyncsApart(t *testing.T) {
	m, reg := newMetrics(t)
	m.Commits(metrics.StoreOutbox)(3, time.Millisecond, 2*time.Millisecond)
	m.Commits(metrics.StoreData)(5, 4*time.Millisecond, 0)
	m.RemoteCommits(metrics.StoreEvents)(7, 3*time.Millisecond)
	m.RemoteCommits(metrics.StoreReadModels)(2, 9*time.Millisecond)

	commits := series(t, reg, "eventsourcing_storage_commit_duration_seconds")
	for _, store := range []string{"outbox", "data", "events", "readmodels"} {
		if commits["store="+store] != 1 {
			t.Errorf("commits: got %v, want one of store %s", commits, store)
		}
	}
	fsyncs := series(t, reg, "eventsourcing_storage_fsync_duration_seconds")
	if fsyncs["store=outbox"] != 1 || fsyncs["store=data"] != 0 || fsyncs["store=events"] != 0 || fsyncs["store=readmodels"] != 0 {
		t.Errorf("fsyncs: got %v, want one of the outbox and none of the others", fsyncs)
	}
}

func TestForgetHandlerDeletesEveryPerHandlerSeries(t *testing.T) {
	m, reg := newMetrics(t)
	for _, h := range []string{"shop/totals", "reactor:shop/ship"} {
		m.SetLag(h, 4)
		m.Retried(h)()
		m.Delivery(h).Observe(0.01)
		m.RecordDeadLetter(h, "shop/orders")
	}
	m.ForgetHandler("reactor:shop/ship")

	for _, name := range []string{
		"eventsourcing_handler_lag",
		"eventsourcing_retries_total",
		"eventsourcing_delivery_duration_seconds",
		"eventsourcing_dead_lettered_total",
	} {
		got := slices.Sorted(maps.Keys(series(t, reg, name)))
		if len(got) != 1 || !strings.Contains(got[0], "handler=shop/totals") {
			t.Errorf("%s: got series %v, want only shop/totals'", name, got)
		}
	}
}

func TestOutboxAndBatchesAreReported(t *testing.T) {
	m, reg := newMetrics(t)
	m.SetOutbox(12, 1500*time.Millisecond)
	m.ObserveBatch(12, time.Millisecond)

	if got := series(t, reg, "eventsourcing_outbox_depth")[""]; got != 12 {
		t.Errorf("outbox depth: got %v, want 12", got)
	}
	if got := series(t, reg, "eventsourcing_outbox_oldest_age_seconds")[""]; got != 1.5 {
		t.Errorf("outbox age: got %v, want 1.5", got)
	}
	if got := series(t, reg, "eventsourcing_processor_batch_size")[""]; got != 1 {
		t.Errorf("batch sizes: got %v observations, want 1", got)
	}
	if got := series(t, reg, "eventsourcing_processor_commit_duration_seconds")[""]; got != 1 {
		t.Errorf("batch durations: got %v observations, want 1", got)
	}
}

// Two engines in one process (tests, a rebuild) share the registry.
func TestNewReusesTheCollectorsAlreadyRegistered(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	first, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := metrics.New(reg)
	if err != nil {
		t.Fatalf("second New on the same registry: %v", err)
	}
	first.SetLag("p", 1)
	second.SetLag("p", 2)
	if got := series(t, reg, "eventsourcing_handler_lag")["handler=p"]; got != 2 {
		t.Errorf("got %v, want both to write the one series (2)", got)
	}
}

func TestNilMetricsGiveANilIngestThatRecordsNothing(t *testing.T) {
	var m *metrics.Metrics
	in := m.Ingest("shop", "orders")
	if in != nil {
		t.Fatalf("got %v, want nil", in)
	}
	in.Observe(http.StatusAccepted, time.Millisecond, 1) // must not panic
}

// BenchmarkIngestObserve is what metrics add to one ingest request: the
// stream's lookup and one observation of each series.
func BenchmarkIngestObserve(b *testing.B) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	m.AddStream("bench/items")
	b.ReportAllocs()
	for b.Loop() {
		m.Ingest("bench", "items").Observe(http.StatusAccepted, time.Millisecond, 17)
	}
}

// docs/monitoring.md's table is the reference of names, types and labels:
// every collector must be in it as it is exported.
func TestEveryMetricIsInTheMonitoringDocsWithItsTypeAndLabels(t *testing.T) {
	m, reg := newMetrics(t)
	// Vectors show up once they have a series.
	m.AddStream("shop/orders")
	m.Ingest("shop", "orders").Observe(http.StatusAccepted, time.Millisecond, 1)
	m.Commits(metrics.StoreOutbox)(1, time.Millisecond, time.Millisecond)
	m.SetStreamEvents("shop/orders", 1)
	m.SetLag("h", 1)
	m.Retried("h")()
	m.Delivery("h").Observe(1)
	m.RecordDeadLetter("h", "shop/orders")
	_, _ = m.Middleware("h")(noop{}).Handle(t.Context(), engine.Message{})
	m.SetQueueDepth("shop/orders", "h", 1)

	docs, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "monitoring.md"))
	if err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) < 17 {
		t.Errorf("gathered %d families, want every collector's (17)", len(families))
	}
	rows := docRows(string(docs))
	for _, f := range families {
		row, ok := rows[f.GetName()]
		if !ok {
			t.Errorf("%s is not in docs/monitoring.md's table", f.GetName())
			continue
		}
		if want := strings.ToLower(f.GetType().String()); row.kind != want {
			t.Errorf("%s: docs/monitoring.md says %s, it is a %s", f.GetName(), row.kind, want)
		}
		labels := make([]string, 0, len(f.GetMetric()[0].GetLabel()))
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		slices.Sort(labels)
		if !slices.Equal(row.labels, labels) {
			t.Errorf("%s: docs/monitoring.md gives labels %v, it has %v", f.GetName(), row.labels, labels)
		}
	}
}

type docRow struct {
	kind   string
	labels []string // sorted
}

// docRows reads the rows "| `name` | type | `label`, ... | meaning |" of
// the docs' metrics table.
func docRows(docs string) map[string]docRow {
	rows := map[string]docRow{}
	for line := range strings.Lines(docs) {
		cells := strings.Split(strings.TrimSpace(line), "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`eventsourcing_") {
			continue
		}
		var labels []string
		for l := range strings.SplitSeq(cells[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = docRow{kind: strings.TrimSpace(cells[2]), labels: labels}
	}
	return rows
}

type noop struct{}

func (noop) Handle(context.Context, engine.Message) ([]engine.Message, error) { return nil, nil }
