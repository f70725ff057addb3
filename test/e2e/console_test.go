package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/console/consoletest"
)

// consoleToken is a token of a ServiceAccount of ns bound to the rules of
// the shipped roles eventsourcing-reader (what the console shows) and
// eventsourcing-writer (redrive; the spec also posts with it), as
// docs/console.md says to bind them. The roles are created under names of
// ns's own: the manifests spec checks that the shipped names are new.
func consoleToken(ctx context.Context, ns string) string {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "console", Namespace: ns}}
	Expect(k8sClient.Create(ctx, sa)).To(Succeed())
	for _, file := range []string{"eventsourcing_reader_role.yaml", "eventsourcing_writer_role.yaml"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(), "config", "api-roles", file))
		Expect(err).NotTo(HaveOccurred())
		role := &rbacv1.ClusterRole{}
		Expect(yaml.Unmarshal(b, role)).To(Succeed())
		role.Name = ns + "-" + role.Name
		Expect(k8sClient.Create(ctx, role)).To(Succeed())
		DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, role)).To(Succeed()) })
		Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: ns}},
		})).To(Succeed())
	}
	tr := &authenticationv1.TokenRequest{}
	Expect(k8sClient.SubResource("token").Create(ctx, sa, tr)).To(Succeed())
	return tr.Status.Token
}

// consolePage is the console in a browser tab, with what a spec needs of it.
type consolePage struct {
	b           *consoletest.Browser
	screenshots string
}

// do runs browser actions, failing the spec with the page's errors.
func (p consolePage) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	GinkgoHelper()
	Expect(p.b.Do(20*time.Second, actions...)).To(Succeed(), "%s (page errors: %v)", what, p.b.Errors())
}

// text is a function for Eventually: the text of the element sel.
func (p consolePage) text(sel string) func() (string, error) {
	return func() (string, error) { return p.b.Text(sel) }
}

// screenshot keeps the page as it is as an artifact of the suite.
func (p consolePage) screenshot(name string) {
	GinkgoHelper()
	path, err := p.b.Screenshot(p.screenshots, name)
	Expect(err).NotTo(HaveOccurred())
	GinkgoWriter.Println("console screenshot:", path)
}

// clearInput empties the input with that id, as selecting its text and
// deleting it would (chromedp.Clear changes only the value attribute).
func clearInput(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf("document.getElementById(%q).value = ''", id))
}

var _ = Describe("the web console", func() {
	It("shows a stream appear and its count rise, opens an event, queries a key and redrives a dead letter, in a browser",
		func(ctx SpecContext) {
			page := consolePage{
				b:           consoletest.NewBrowser(GinkgoT()),
				screenshots: consoletest.ScreenshotDir(repoRoot()),
			}
			ns := newNamespace(ctx)
			token := consoleToken(ctx, ns)
			m := runManager("--ingest-auth=kubernetes", "--allow-private-sinks")
			bearer := http.Header{"Authorization": {"Bearer " + token}}
			m.waitReady()

			By("asking for a token: the manager checks every call the console makes")
			page.do("open the console",
				chromedp.Navigate(fmt.Sprintf("%s/console?namespace=%s", m.api, ns)),
				chromedp.WaitVisible(chromedp.ID("token-input")))
			page.screenshot("1-token-prompt")
			page.do("enter the token",
				chromedp.SendKeys(chromedp.ID("token-input"), token),
				chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
			Eventually(page.text("#streams-table tbody")).WithTimeout(10 * time.Second).
				Should(ContainSubstring("No streams in this namespace"))

			By("showing a stream that kubectl apply creates, with its projection and reactor")
			var sinkFixed atomic.Bool
			var deliveredAfterFix atomic.Int32
			sink := loopbackSink(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("ce-partitionkey") == "order-2" {
					if !sinkFixed.Load() {
						http.Error(w, "order-2 has no address", http.StatusBadRequest)
						return
					}
					deliveredAfterFix.Add(1)
				}
				w.WriteHeader(http.StatusOK)
			})
			reactor := filepath.Join(GinkgoT().TempDir(), "reactor.yaml")
			Expect(os.WriteFile(reactor, fmt.Appendf(nil, `apiVersion: eventsourcing.dev/v1alpha1
kind: Reactor
metadata: {name: ship}
spec:
  streams: [orders]
  startFrom: Beginning
  sink: {uri: %q}
`, sink), 0o600)).To(Succeed())
			_, err := kubectl(ctx, "apply", "-n", ns,
				"-f", "config/samples/eventsourcing_v1alpha1_stream_orders.yaml",
				"-f", "config/samples/eventsourcing_v1alpha1_projection_reduce.yaml",
				"-f", reactor)
			Expect(err).NotTo(HaveOccurred())
			// The manager removes the Reactor's finalizer; it must still run.
			DeferCleanup(func(ctx context.Context) {
				_, err := kubectl(ctx, "delete", "-n", ns, "reactor", "ship", "--wait", "--timeout=30s")
				Expect(err).NotTo(HaveOccurred())
			}, NodeTimeout(time.Minute))
			streamRow := `#streams-table tr[data-name="orders"]`
			Eventually(page.text(streamRow)).WithTimeout(20 * time.Second).Should(ContainSubstring("orders"))
			Eventually(page.text(`#reactors-table tr[data-name="ship"]`)).WithTimeout(20 * time.Second).Should(ContainSubstring("Ready"))

			By("seeing the stream's count rise as events are posted")
			keys := fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/keys/", m.api, ns)
			for _, e := range []struct{ key, body string }{
				{"order-1", `{"amount":10}`}, {"order-2", `{"amount":7}`}, {"order-1", `{"amount":5}`},
			} {
				resp, err := callAPI(ctx, http.MethodPost, keys+e.key+"/events?name=LineAdded", "application/json", []byte(e.body), bearer)
				Expect(err).NotTo(HaveOccurred())
				Expect(resp.status).To(Equal(http.StatusAccepted), "POST %s: %s", e.key, resp)
			}
			Eventually(page.text(streamRow + " td:nth-of-type(1)")).WithTimeout(10 * time.Second).Should(Equal("3"))
			Eventually(page.text(`#projections-table tr[data-name="order-totals"]`)).WithTimeout(10 * time.Second).
				Should(ContainSubstring("Ready"))
			page.screenshot("2-overview")

			By("opening an event: its payload as formatted JSON")
			page.do("open the first event of orders",
				chromedp.Click(chromedp.CSS(streamRow+" a")),
				chromedp.WaitVisible(chromedp.CSS("#events-table tbody button")),
				chromedp.Click(chromedp.CSS("#events-table tbody button")),
				chromedp.WaitVisible(chromedp.ID("event-detail-payload")))
			Expect(page.b.Text("#event-detail-payload")).To(Equal("{\n  \"amount\": 10\n}"))
			Expect(page.b.Text("#event-detail-fields")).To(And(ContainSubstring("order-1"), ContainSubstring("LineAdded")))
			page.screenshot("3-event")

			By("filtering the events by key and by name")
			page.do("filter by key order-1",
				chromedp.SendKeys(chromedp.ID("events-key"), "order-1"),
				chromedp.Click(chromedp.CSS(`#events-form button[type="submit"]`)))
			Eventually(page.text("#events-status")).WithTimeout(10 * time.Second).Should(Equal("2 events."))
			Expect(page.b.Text("#events-caption")).To(ContainSubstring("the key is at version 2"))
			page.do("filter by a name no event has",
				clearInput("events-key"),
				chromedp.SendKeys(chromedp.ID("events-name"), "OrderPaid"),
				chromedp.Click(chromedp.CSS(`#events-form button[type="submit"]`)))
			Eventually(page.text("#events-table tbody")).WithTimeout(10 * time.Second).Should(Equal("No events on this page."))

			By("querying a key of a read model")
			page.do("query order-1 of order-totals",
				chromedp.Click(chromedp.CSS(`nav a[data-view="readmodels"]`)),
				chromedp.WaitVisible(chromedp.ID("readmodel-projection")),
				chromedp.SendKeys(chromedp.ID("readmodel-projection"), "order-totals"),
				chromedp.SendKeys(chromedp.ID("readmodel-key"), "order-1"),
				chromedp.Click(chromedp.CSS(`#readmodel-form button[type="submit"]`)))
			Eventually(page.text("#readmodel-result")).WithTimeout(10 * time.Second).
				Should(Equal("{\n  \"lines\": 2,\n  \"status\": \"new\",\n  \"total\": 15\n}"))
			page.screenshot("4-read-model")
			page.do("query the whole read model",
				clearInput("readmodel-key"),
				chromedp.Click(chromedp.CSS(`#readmodel-form button[type="submit"]`)))
			Eventually(page.text("#readmodel-result")).WithTimeout(10 * time.Second).
				Should(MatchJSON(`{"order-1": {"lines": 2, "status": "new", "total": 15}, "order-2": {"lines": 1, "status": "new", "total": 7}}`))

			By("listing the dead letter with its reason, and redriving it once the sink is fixed")
			handler := `[data-handler="reactor:` + ns + `/ship"]`
			page.do("open the dead letters",
				chromedp.Click(chromedp.CSS(`nav a[data-view="deadletters"]`)))
			Eventually(page.text(handler + " tbody")).WithTimeout(20 * time.Second).
				Should(And(ContainSubstring("order-2"), ContainSubstring("400")))
			page.screenshot("5-dead-letters")
			sinkFixed.Store(true)
			page.do("redrive it", chromedp.Click(chromedp.CSS(handler+` tbody button[aria-label^="Redrive"]`)))
			Eventually(page.text("#deadletters-status")).WithTimeout(10 * time.Second).Should(ContainSubstring("Redriven: 1"))
			Eventually(deliveredAfterFix.Load).WithTimeout(10 * time.Second).Should(BeEquivalentTo(1))
			Eventually(page.text(handler + " tbody")).WithTimeout(10 * time.Second).Should(ContainSubstring("redriven at"))
			page.screenshot("6-redriven")

			page.do("back to the overview", chromedp.Click(chromedp.CSS(`nav a[data-view="overview"]`)))
			Eventually(page.text(`#reactors-table tr[data-name="ship"] td:nth-of-type(2)`)).WithTimeout(10*time.Second).
				Should(Equal("3"), "the reactor's deliveries, the redriven one among them")
			Expect(page.b.Errors()).To(BeEmpty(), "errors in the page")
		}, SpecTimeout(90*time.Second))
})
