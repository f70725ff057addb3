package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics/metricstest"
)

// histogram returns the named histogram's series of labels, nil when none.
func histogram(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	if m := metricstest.Find(t, reg, name, labels); m != nil {
		return m.GetHistogram()
	}
	return nil
}

// counter returns the named counter's value for labels, -1 when there is
// no such series.
func counter(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	if m := metricstest.Find(t, reg, name, labels); m != nil {
		return m.GetCounter().GetValue()
	}
	return -1
}

func TestEveryAnsweredIngestIsCountedByStreamAndCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, apiOptions{metrics: m})

	expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"a","n":1}`), http.StatusAccepted)
	expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"a","n":2}`), http.StatusAccepted)
	expectStatus(t, a.post(itemsPath, "application/json", `{not json`), http.StatusBadRequest)
	expectStatus(t, a.post("/v1/namespaces/team-a/streams/items-events/keys/k1/events", "application/json", `{"foo":"k","n":3}`),
		http.StatusAccepted)
	expectStatus(t, a.post("/v1/namespaces/nobody/streams/made-up/events", "application/json", `{}`), http.StatusNotFound)
	expectStatus(t, a.post("/v1/namespaces/team-a/streams/NOT_A_NAME/events", "application/json", `{}`), http.StatusNotFound)
	// Reads are not ingest.
	expectStatus(t, a.get(itemsPath), http.StatusOK)

	items := map[string]string{"namespace": ns, "stream": "items-events"}
	for code, want := range map[string]float64{"202": 3, "400": 1} {
		labels := map[string]string{"namespace": ns, "stream": "items-events", "code": code}
		if got := counter(t, reg, "eventsourcing_ingest_requests_total", labels); got != want {
			t.Errorf("requests %v: got %v, want %v", labels, got, want)
		}
	}
	unknown := map[string]string{"namespace": "", "stream": "", "code": "404"}
	if got := counter(t, reg, "eventsourcing_ingest_requests_total", unknown); got != 2 {
		t.Errorf("requests for streams that do not exist: got %v under %v, want 2", got, unknown)
	}
	if h := histogram(t, reg, "eventsourcing_ingest_duration_seconds", items); h.GetSampleCount() != 4 || h.GetSampleSum() <= 0 {
		t.Errorf("durations: got %d observations summing to %gs, want 4 taking some time", h.GetSampleCount(), h.GetSampleSum())
	}
	body := len(`{"foo":"a","n":1}`) + len(`{"foo":"a","n":2}`) + len(`{not json`) + len(`{"foo":"k","n":3}`)
	if h := histogram(t, reg, "eventsourcing_ingest_request_bytes", items); h.GetSampleCount() != 4 || h.GetSampleSum() != float64(body) {
		t.Errorf("body sizes: got %d observations summing to %g bytes, want 4 summing to %d", h.GetSampleCount(), h.GetSampleSum(), body)
	}
}

// A chunked body declares no length: its size is what was read of it.
func TestTheSizeOfAChunkedIngestBodyIsWhatWasRead(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, apiOptions{metrics: m})
	batch := `{"foo":"a","n":1}` + "\n" + `{"foo":"b","n":2}` + "\n"
	// A reader of unknown length makes the client send it chunked.
	req, err := http.NewRequest(http.MethodPost, a.server.URL+itemsPath, io.MultiReader(strings.NewReader(batch)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if r := a.send(req); r.status != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", r.status, r.body)
	}
	h := histogram(t, reg, "eventsourcing_ingest_request_bytes", map[string]string{"namespace": ns, "stream": "items-events"})
	if h.GetSampleCount() != 1 || h.GetSampleSum() != float64(len(batch)) {
		t.Errorf("got %d observations summing to %g bytes, want 1 of %d", h.GetSampleCount(), h.GetSampleSum(), len(batch))
	}
}
