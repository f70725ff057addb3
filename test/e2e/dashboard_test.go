package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/eventsourcing-dev/eventsourcing-operator/test/dashboard"
)

// dashboardFile is the Grafana dashboard config/grafana ships.
func dashboardFile() []byte {
	d, err := os.ReadFile(filepath.Join(repoRoot(), "config", "grafana", "eventsourcing-dashboard.json"))
	Expect(err).NotTo(HaveOccurred())
	return d
}

var _ = Describe("the Grafana dashboard", func() {
	It("names only metrics and labels that a manager under traffic exports on /metrics", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		metricsAddr := freeLoopbackAddress()
		// Disk storage, for the commit and fsync series.
		m := runManager("--storage=disk", "--data-dir="+GinkgoT().TempDir(), "--allow-private-sinks",
			"--metrics-bind-address="+metricsAddr, "--metrics-secure=true")

		By("running a projection, and a reactor whose sink fails once (a retry) and refuses one event (a dead letter)")
		applyItemsStream(ctx, ns)
		createJSONStream(ctx, ns, "orders")
		var calls atomic.Int32
		sink := loopbackSink(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			switch {
			case calls.Add(1) == 1:
				w.WriteHeader(http.StatusServiceUnavailable)
			case bytes.Contains(body, []byte("refuse")):
				w.WriteHeader(http.StatusBadRequest)
			default:
				w.WriteHeader(http.StatusOK)
			}
		})
		rx := createReactor(ctx, ns, sink, nil)

		By("ingesting events, and one request the API refuses")
		items := fmt.Sprintf("%s/v1/namespaces/%s/streams/items-events/events", m.api, ns)
		Eventually(func() (int, error) {
			r, err := callAPI(ctx, http.MethodPost, items, "application/json", []byte(`{"n":0}`), nil)
			return r.status, err
		}).WithTimeout(60 * time.Second).Should(Equal(http.StatusAccepted))
		for i := 1; i < 10; i++ {
			postEvent(ctx, items, "application/json", fmt.Appendf(nil, `{"n":%d}`, i))
		}
		r, err := callAPI(ctx, http.MethodPost, items, "application/json", []byte(`{not json`), nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(r.status).To(Equal(http.StatusBadRequest), "%s", r)
		orders := fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/events", m.api, ns)
		postEvent(ctx, orders, "application/json", []byte(`{"n":1}`))
		postEvent(ctx, orders, "application/json", []byte(`{"refuse":true}`))
		Eventually(reactorCounts(ctx, rx)).WithTimeout(60 * time.Second).Should(Equal("1/1"))

		By("scraping /metrics with a token allowed get on it, until the gauges refreshed every 5s are there")
		token := tokenAllowedGet(ctx, ns, "prometheus", "/metrics")
		d := dashboardFile()
		var scrape []byte
		Eventually(func(g Gomega) {
			status, body, err := getSecure(ctx, metricsAddr, "/metrics", token)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(status).To(Equal(http.StatusOK), "%s", body)
			scrape = body
			exported, err := dashboard.ParseScrape(bytes.NewReader(body))
			g.Expect(err).NotTo(HaveOccurred())
			problems, err := dashboard.Check(d, exported)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(problems).To(BeEmpty(), "the dashboard names what the manager does not export")
		}).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())

		By("labelling by the objects' names, never by event ids or keys")
		for _, want := range []string{
			fmt.Sprintf(`eventsourcing_ingest_requests_total{code="400",namespace="%s",stream="items-events"} 1`, ns),
			fmt.Sprintf(`eventsourcing_handler_lag{handler="reactor:%s/ship"}`, ns),
			fmt.Sprintf(`eventsourcing_dead_lettered_total{handler="reactor:%s/ship",stream="%s/orders"} 1`, ns, ns),
			`eventsourcing_storage_fsync_duration_seconds_count{store="outbox"}`,
		} {
			Expect(string(scrape)).To(ContainSubstring(want))
		}
		Expect(string(scrape)).NotTo(ContainSubstring("refuse"))
	}, SpecTimeout(4*time.Minute))

	It("config/grafana passes a server-side dry run as a ConfigMap for Grafana's dashboard sidecar", func(ctx SpecContext) {
		ns := fmt.Sprintf("grafana-dry-run-%d", time.Now().UnixNano())
		_, err := kubectl(ctx, "create", "namespace", ns)
		Expect(err).NotTo(HaveOccurred())

		out, err := kubectl(ctx, "apply", "--dry-run=server", "-n", ns, "-k", "config/grafana")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("configmap/eventsourcing-dashboard created (server dry run)"))
		Expect(strings.Count(out, "(server dry run)")).To(Equal(1), "want the ConfigMap and nothing else:\n%s", out)

		cm := onlyObjectOfKind(renderKustomization(ctx, "config/grafana"), "ConfigMap")
		Expect(cm.GetLabels()).To(HaveKeyWithValue("grafana_dashboard", "1"))
		Expect(cm.GetNamespace()).To(BeEmpty(), "-n decides: the namespace Grafana's sidecar watches")
		data, found, err := unstructured.NestedString(cm.Object, "data", "eventsourcing-dashboard.json")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(BeTrue())
		Expect(data).To(Equal(string(dashboardFile())))
	}, NodeTimeout(time.Minute))
})
