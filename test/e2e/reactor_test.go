package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// loopbackSink is an HTTP sink in the test process on loopback, answering
// with answer; the server stops at the end of the spec.
func loopbackSink(answer http.HandlerFunc) string {
	srv := httptest.NewServer(answer)
	DeferCleanup(srv.Close)
	return srv.URL
}

// createJSONStream creates a Stream of JSON events in ns and waits until it
// is active.
func createJSONStream(ctx context.Context, ns, name string) {
	GinkgoHelper()
	stream := &esv1.Stream{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       esv1.StreamSpec{ContentTypes: []esv1.ContentType{"application/json"}, DefaultEventName: "OrderPaid"},
	}
	Expect(k8sClient.Create(ctx, stream)).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(stream), stream)).To(Succeed())
		g.Expect(readyCondition(stream.Status.Conditions)).To(Equal("True/Active"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// createReactor creates Reactor ship in ns over stream orders, from the
// stream's beginning, to sink, and waits until it runs. At the end of the
// spec it is deleted while its manager still runs (to remove its
// finalizer): namespaces outlive specs, and the managers of later specs,
// without --allow-private-sinks, would refuse it and log errors.
func createReactor(ctx context.Context, ns, sink string, change func(*esv1.ReactorSpec)) *esv1.Reactor {
	GinkgoHelper()
	rx := &esv1.Reactor{
		ObjectMeta: metav1.ObjectMeta{Name: "ship", Namespace: ns},
		Spec: esv1.ReactorSpec{
			Streams:   []string{"orders"},
			StartFrom: esv1.StartFromBeginning,
			Sink:      esv1.ReactorSink{URI: sink},
		},
	}
	if change != nil {
		change(&rx.Spec)
	}
	Expect(k8sClient.Create(ctx, rx)).To(Succeed())
	DeferCleanup(func(ctx context.Context) {
		Expect(k8sClient.Delete(ctx, rx)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(rx), &esv1.Reactor{})
		}).WithTimeout(30 * time.Second).Should(Satisfy(apierrors.IsNotFound))
	}, NodeTimeout(time.Minute))
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(rx), rx)).To(Succeed())
		g.Expect(readyCondition(rx.Status.Conditions)).To(Equal("True/Running"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	return rx
}

// reactorCounts is a function for Eventually: the Reactor's
// eventsDelivered and deadLettered, as "delivered/deadLettered".
func reactorCounts(ctx context.Context, rx *esv1.Reactor) func() (string, error) {
	return func() (string, error) {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(rx), rx); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d/%d", rx.Status.EventsDelivered, rx.Status.DeadLettered), nil
	}
}

var _ = Describe("reactors of the manager binary, delivering to sinks on loopback", Ordered, func() {
	var m *managerProcess
	BeforeAll(func() {
		m = runManager("--allow-private-sinks")
	})

	It("keeps each key's events in order under KeyOrdered while keys run in parallel", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		createJSONStream(ctx, ns, "orders")
		const keys, perKey = 20, 5
		var (
			mu                  sync.Mutex
			seen                = map[string][]int{}
			inFlight, mostFound int
		)
		sink := loopbackSink(func(w http.ResponseWriter, r *http.Request) {
			var payload struct{ N int }
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			inFlight++
			mostFound = max(mostFound, inFlight)
			mu.Unlock()
			// Long enough that other keys' deliveries overlap this one.
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			inFlight--
			if json.Unmarshal(body, &payload) == nil {
				key := r.Header.Get("ce-partitionkey")
				seen[key] = append(seen[key], payload.N)
			}
			mu.Unlock()
			w.WriteHeader(http.StatusOK)
		})
		createReactor(ctx, ns, sink, func(s *esv1.ReactorSpec) {
			s.Delivery = esv1.ReactorDelivery{Ordering: esv1.OrderingKeyOrdered, MaxInFlight: 16}
		})
		url := fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/keys/", m.api, ns)
		for i := range keys * perKey {
			postEvent(ctx, fmt.Sprintf("%sorder-%d/events", url, i%keys), "application/json", fmt.Appendf(nil, `{"n":%d}`, i))
		}

		Eventually(func() int {
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for _, got := range seen {
				n += len(got)
			}
			return n
		}).WithTimeout(20 * time.Second).Should(Equal(keys * perKey))
		mu.Lock()
		defer mu.Unlock()
		Expect(seen).To(HaveLen(keys))
		for k := range keys {
			want := make([]int, 0, perKey)
			for j := range perKey {
				want = append(want, k+j*keys)
			}
			Expect(seen[fmt.Sprintf("order-%d", k)]).To(Equal(want), "order-%d's events, in the order the sink saw them", k)
		}
		Expect(mostFound).To(BeNumerically(">", 1), "keys delivered in parallel")
		Expect(mostFound).To(BeNumerically("<=", 16), "at most maxInFlight at once")
	}, SpecTimeout(time.Minute))

	It("delivers to a sink that fails three times and then takes the event, dead-lettering nothing", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		createJSONStream(ctx, ns, "orders")
		var requests atomic.Int32
		sink := loopbackSink(func(w http.ResponseWriter, _ *http.Request) {
			if requests.Add(1) <= 3 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		rx := createReactor(ctx, ns, sink, nil)
		postEvent(ctx, fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/keys/order-1/events", m.api, ns), "application/json", []byte(`{}`))

		Eventually(requests.Load).WithTimeout(10 * time.Second).Should(BeEquivalentTo(4))
		eventuallyWithin(reactorCounts(ctx, rx), 15*time.Second).Should(Equal("1/0"))
		Expect(requests.Load()).To(BeEquivalentTo(4), "no delivery after the one that succeeded")
		dead, err := readStream(ctx, fmt.Sprintf("%s/v1/namespaces/%s/streams/dead/events", m.api, ns), 0)
		Expect(err).NotTo(HaveOccurred())
		Expect(dead).To(BeEmpty())
	}, SpecTimeout(time.Minute))

	It("dead-letters an event its sink answers 400 at once, without retrying", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		createJSONStream(ctx, ns, "orders")
		var requests atomic.Int32
		sink := loopbackSink(func(w http.ResponseWriter, _ *http.Request) {
			requests.Add(1)
			http.Error(w, "no such order", http.StatusBadRequest)
		})
		rx := createReactor(ctx, ns, sink, nil)
		id, _, err := acceptedID(ctx, fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/keys/order-1/events", m.api, ns), []byte(`{}`))
		Expect(err).NotTo(HaveOccurred())

		deadURL := fmt.Sprintf("%s/v1/namespaces/%s/streams/dead/events", m.api, ns)
		var dead []streamEvent
		Eventually(func() ([]streamEvent, error) {
			dead, err = readStream(ctx, deadURL, 0)
			return dead, err
		}).WithTimeout(10 * time.Second).Should(HaveLen(1))
		Expect(dead[0].Headers).To(HaveKeyWithValue("x-dead-letter-handler", "reactor:"+ns+"/ship"))
		Expect(dead[0].Headers).To(HaveKeyWithValue("x-dead-letter-event-id", id))
		Expect(dead[0].Headers).To(HaveKeyWithValue("x-dead-letter-attempts", "1"))
		Expect(requests.Load()).To(BeEquivalentTo(1), "a 400 is not retried")
		eventuallyWithin(reactorCounts(ctx, rx), 15*time.Second).Should(Equal("0/1"))
	}, SpecTimeout(time.Minute))

	It("appends the sink's replies to the reply stream with the cause's id, and a projection counts them", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		createJSONStream(ctx, ns, "orders")
		createJSONStream(ctx, ns, "order-shipments")
		shipments := &esv1.Projection{
			ObjectMeta: metav1.ObjectMeta{Name: "shipments", Namespace: ns},
			Spec: esv1.ProjectionSpec{
				Streams:   []string{"order-shipments"},
				ReadModel: esv1.ReadModel{Type: esv1.ReadModelCount, Key: "all"},
			},
		}
		Expect(k8sClient.Create(ctx, shipments)).To(Succeed())
		// The reply of hack/reactor-sink: ShipmentRequested for the order, in
		// binary mode, no id (the Reactor derives one).
		sink := loopbackSink(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ce-specversion", "1.0")
			w.Header().Set("ce-type", "ShipmentRequested")
			w.Header().Set("ce-source", "/shipping")
			w.Header().Set("ce-partitionkey", r.Header.Get("ce-partitionkey"))
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"order":%q}`, r.Header.Get("ce-partitionkey"))
		})
		createReactor(ctx, ns, sink, func(s *esv1.ReactorSpec) {
			s.Reply = &esv1.ReactorReply{Stream: "order-shipments"}
		})
		orders := fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/keys/", m.api, ns)
		const total = 5
		causes := map[string]string{} // order -> the id of its OrderPaid
		for i := range total {
			order := fmt.Sprintf("order-%d", i)
			id, _, err := acceptedID(ctx, orders+order+"/events", []byte(`{}`))
			Expect(err).NotTo(HaveOccurred())
			causes[order] = id
		}

		replyURL := fmt.Sprintf("%s/v1/namespaces/%s/streams/order-shipments/events", m.api, ns)
		var replies []streamEvent
		Eventually(func() ([]streamEvent, error) {
			var err error
			replies, err = readStream(ctx, replyURL, 0)
			return replies, err
		}).WithTimeout(15 * time.Second).Should(HaveLen(total))
		for _, reply := range replies {
			Expect(reply.Name).To(Equal("ShipmentRequested"))
			Expect(causes).To(HaveKey(reply.Key), "a reply keyed by its order")
			Expect(reply.CausationID).To(Equal(causes[reply.Key]), "%s's reply names its OrderPaid as cause", reply.Key)
			Expect(string(reply.Payload)).To(MatchJSON(fmt.Sprintf(`{"order":%q}`, reply.Key)))
		}
		count := fmt.Sprintf("%s/v1/namespaces/%s/projections/shipments/keys/all", m.api, ns)
		eventuallyWithin(getJSON(ctx, count), 15*time.Second).Should(MatchJSON(fmt.Sprint(total)))
	}, SpecTimeout(time.Minute))
})
