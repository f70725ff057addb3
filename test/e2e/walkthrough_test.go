package e2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// samplesDir is the kustomization the README walkthrough applies, relative
// to the repository's root (where kubectl runs).
var samplesDir = "config/samples"

// statusRefresh bounds how long status counters take to show a change: the
// controllers refresh them every 5 seconds.
const statusRefresh = 30 * time.Second

// eventuallyWithin polls f every 200ms for at most timeout.
func eventuallyWithin(f any, timeout time.Duration) AsyncAssertion {
	return Eventually(f).WithTimeout(timeout).WithPolling(200 * time.Millisecond)
}

// waitProjectionRunning waits until the Projection ns/name is True/Running.
func waitProjectionRunning(ctx context.Context, ns, name string) {
	GinkgoHelper()
	p := &esv1.Projection{}
	eventuallyWithin(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p)).To(Succeed())
		g.Expect(readyCondition(p.Status.Conditions)).To(Equal("True/Running"), "Projection %s", name)
	}, 60*time.Second).Should(Succeed())
}

var _ = Describe("the product as a user meets it", func() {
	It("the README walkthrough", func(ctx SpecContext) {
		m := runManager()
		ns := newNamespace(ctx)
		out, err := kubectl(ctx, "apply", "-n", ns, "-k", samplesDir)
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("stream.eventsourcing.dev/items-events created"))
		Expect(out).To(ContainSubstring("projection.eventsourcing.dev/items created"))

		stream := &esv1.Stream{}
		eventuallyWithin(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "items-events"}, stream)).To(Succeed())
			g.Expect(readyCondition(stream.Status.Conditions)).To(Equal("True/Active"))
		}, 60*time.Second).Should(Succeed())
		waitProjectionRunning(ctx, ns, "items")
		// Every sample comes up, not only the two the walkthrough reads.
		eventuallyWithin(func(g Gomega) {
			var pipelines esv1.PipelineList
			g.Expect(k8sClient.List(ctx, &pipelines, client.InNamespace(ns))).To(Succeed())
			for _, p := range pipelines.Items {
				g.Expect(readyCondition(p.Status.Conditions)).To(HavePrefix("True/"), "Pipeline %s", p.Name)
			}
			var projections esv1.ProjectionList
			g.Expect(k8sClient.List(ctx, &projections, client.InNamespace(ns))).To(Succeed())
			for _, p := range projections.Items {
				g.Expect(readyCondition(p.Status.Conditions)).To(Equal("True/Running"), "Projection %s", p.Name)
			}
		}, 60*time.Second).Should(Succeed())

		events := fmt.Sprintf("%s/v1/namespaces/%s/streams/items-events/events", m.api, ns)
		postEvent(ctx, events, "application/json", samplePayload("item.json"))
		postEvent(ctx, events, "application/avro", samplePayload("item.avro"))
		postEvent(ctx, events, "application/x-protobuf", samplePayload("item.pb"))

		query := func(name string) func() (string, error) {
			return getJSON(ctx, fmt.Sprintf("%s/v1/namespaces/%s/projections/%s", m.api, ns, name))
		}
		eventuallyWithin(query("items"), 30*time.Second).
			Should(MatchJSON(`{"items":[{"foo":"a","n":1},{"foo":"b","n":2},{"foo":"c","n":3}]}`))
		// The samples' Count and Latest examples, as their comments say.
		eventuallyWithin(query("item-count"), 30*time.Second).Should(MatchJSON(`{"ItemCreated":3}`))
		eventuallyWithin(query("latest-item-by-foo"), 30*time.Second).
			Should(MatchJSON(`{"a":{"foo":"a","n":1},"b":{"foo":"b","n":2},"c":{"foo":"c","n":3}}`))

		// The stream reads back in order, every payload shown as JSON.
		read, err := readStream(ctx, events, 0)
		Expect(err).NotTo(HaveOccurred())
		Expect(read).To(HaveLen(3), "GET %s?after=0", events)
		for i, want := range []struct{ contentType, payload string }{
			{"application/json", `{"foo":"a","n":1}`},
			{"application/avro", `{"foo":"b","n":2}`},
			{"application/x-protobuf", `{"foo":"c","n":3}`},
		} {
			Expect(read[i].Sequence).To(BeEquivalentTo(i+1), "event %d", i)
			Expect(read[i].Name).To(Equal("ItemCreated"), "event %d", i)
			Expect(read[i].ContentType).To(Equal(want.contentType), "event %d", i)
			Expect(string(read[i].Payload)).To(MatchJSON(want.payload), "event %d", i)
		}

		// kubectl shows it as a user sees it: Ready, with the counters.
		eventuallyWithin(func(g Gomega) {
			out, err := kubectl(ctx, "get", "streams,projections", "-n", ns)
			g.Expect(err).NotTo(HaveOccurred())
			rows := kubectlTable(out)
			s := tableRow(rows, "items-events")
			g.Expect(s).To(HaveKeyWithValue("READY", "True"), out)
			g.Expect(s).To(HaveKeyWithValue("LAST SEQUENCE", "3"), out)
			p := tableRow(rows, "items")
			g.Expect(p).To(HaveKeyWithValue("READY", "True"), out)
			g.Expect(p).To(HaveKeyWithValue("PROCESSED", "3"), out)
			g.Expect(p).To(HaveKeyWithValue("DEAD LETTERED", "0"), out)
			g.Expect(p).To(HaveKeyWithValue("LAG", "0"), out)
			g.Expect(p).To(HaveKeyWithValue("QUERY PATH", fmt.Sprintf("/v1/namespaces/%s/projections/items", ns)), out)
		}, statusRefresh).Should(Succeed())
		// And so does the objects' status.
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "items-events"}, stream)).To(Succeed())
		Expect(stream.Status.LastSequence).To(BeEquivalentTo(3))
		Expect(stream.Status.IngestPath).To(Equal(fmt.Sprintf("/v1/namespaces/%s/streams/items-events/events", ns)))
		items := &esv1.Projection{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "items"}, items)).To(Succeed())
		Expect(items.Status.EventsProcessed).To(BeEquivalentTo(3))
		Expect(items.Status.DeadLettered).To(BeZero())
		Expect(items.Status.Lag).To(BeZero())
	}, SpecTimeout(2*time.Minute))

	It("a projection whose CEL key fails on an event dead-letters it while the others carry on", func(ctx SpecContext) {
		m := runManager()
		ns := newNamespace(ctx)
		// items-events dead-letters to the manager's default, dead; orders
		// names a dead-letter stream of its own.
		createItemsStream(ctx, ns)
		orders := &esv1.Stream{
			ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns},
			Spec:       esv1.StreamSpec{DefaultEventName: "OrderPlaced", DeadLetterStream: "orders-dead"},
		}
		Expect(k8sClient.Create(ctx, orders)).To(Succeed())
		bySKU := &esv1.Projection{
			ObjectMeta: metav1.ObjectMeta{Name: "by-sku", Namespace: ns},
			Spec: esv1.ProjectionSpec{
				Streams:   []string{"items-events", "orders"},
				ReadModel: esv1.ReadModel{Type: esv1.ReadModelCount, KeyExpression: "event.payload.sku"},
			},
		}
		Expect(k8sClient.Create(ctx, bySKU)).To(Succeed())
		waitProjectionRunning(ctx, ns, "items")
		waitProjectionRunning(ctx, ns, "by-sku")

		streamURL := func(name string) string {
			return fmt.Sprintf("%s/v1/namespaces/%s/streams/%s/events", m.api, ns, name)
		}
		items := []string{
			`{"foo":"a","n":1,"sku":"x"}`,
			`{"foo":"b","n":2}`, // no sku: the key expression fails
			`{"foo":"c","n":3,"sku":"x"}`,
			`{"foo":"d","n":4,"sku":"y"}`,
			`{"foo":"e","n":5}`, // no sku
		}
		for _, item := range items {
			postEvent(ctx, streamURL("items-events"), "application/json", []byte(item))
		}
		postEvent(ctx, streamURL("orders"), "application/json", []byte(`{"sku":"y","qty":2}`))
		postEvent(ctx, streamURL("orders"), "application/json", []byte(`{"qty":1}`)) // no sku

		// The projections carry on past the failures: every good event is in.
		query := func(name string) func() (string, error) {
			return getJSON(ctx, fmt.Sprintf("%s/v1/namespaces/%s/projections/%s", m.api, ns, name))
		}
		eventuallyWithin(query("items"), 30*time.Second).Should(MatchJSON(`{"items":[` + strings.Join(items, ",") + `]}`))
		eventuallyWithin(query("by-sku"), 30*time.Second).Should(MatchJSON(`{"x":2,"y":2}`))

		// The failed events are in the dead-letter streams, readable without
		// declaring them, with headers that say why and where from.
		type deadLetter struct {
			payload, stream string
			sequence        int
		}
		expectDeadLetters := func(name string, want []deadLetter) {
			GinkgoHelper()
			var got []streamEvent
			eventuallyWithin(func() ([]streamEvent, error) {
				var err error
				got, err = readStream(ctx, streamURL(name), 0)
				return got, err
			}, 30*time.Second).Should(HaveLen(len(want)), "GET %s", streamURL(name))
			for i, w := range want {
				source, err := readStream(ctx, streamURL(w.stream), uint64(w.sequence-1))
				Expect(err).NotTo(HaveOccurred())
				Expect(source).NotTo(BeEmpty(), "%s event %d: stream %s has no event %d", name, i, w.stream, w.sequence)
				e := got[i]
				Expect(string(e.Payload)).To(MatchJSON(w.payload), "%s event %d", name, i)
				// Headers name streams and projections as <namespace>/<name>.
				Expect(e.Headers).To(And(
					HaveKeyWithValue("x-dead-letter-stream", ns+"/"+w.stream),
					HaveKeyWithValue("x-dead-letter-sequence", fmt.Sprint(w.sequence)),
					HaveKeyWithValue("x-dead-letter-event-id", source[0].ID),
					HaveKeyWithValue("x-dead-letter-handler", ns+"/by-sku"),
					// A CEL error is not retried.
					HaveKeyWithValue("x-dead-letter-attempts", "1"),
					HaveKeyWithValue("x-dead-letter-error", ContainSubstring("no such key: sku")),
				), "%s event %d", name, i)
			}
		}
		expectDeadLetters("dead", []deadLetter{{items[1], "items-events", 2}, {items[4], "items-events", 5}})
		expectDeadLetters("orders-dead", []deadLetter{{`{"qty":1}`, "orders", 2}})

		// Status counts them on the failing projection only.
		eventuallyWithin(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(bySKU), bySKU)).To(Succeed())
			g.Expect(bySKU.Status.DeadLettered).To(BeEquivalentTo(3), "by-sku deadLettered")
			g.Expect(bySKU.Status.EventsProcessed).To(BeEquivalentTo(4), "by-sku eventsProcessed")
			g.Expect(bySKU.Status.Lag).To(BeZero(), "by-sku lag")
			g.Expect(readyCondition(bySKU.Status.Conditions)).To(Equal("True/Running"))
			itemsProjection := &esv1.Projection{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "items"}, itemsProjection)).To(Succeed())
			g.Expect(itemsProjection.Status.DeadLettered).To(BeZero(), "items deadLettered")
			g.Expect(itemsProjection.Status.EventsProcessed).To(BeEquivalentTo(len(items)), "items eventsProcessed")
		}, statusRefresh).Should(Succeed())
		out, err := kubectl(ctx, "get", "projection", "by-sku", "-n", ns)
		Expect(err).NotTo(HaveOccurred())
		Expect(tableRow(kubectlTable(out), "by-sku")).To(HaveKeyWithValue("DEAD LETTERED", "3"), out)
	}, SpecTimeout(2*time.Minute))
})
