package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
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

// restartableSink is a sink on loopback that can go down (its listener
// closed, so connections are refused) and come back on the same address.
type restartableSink struct {
	addr    string
	handler http.Handler
	srv     *httptest.Server
}

// newRestartableSink starts a sink answering with answer; it stops at the
// end of the spec. Its port is below Linux's ephemeral range (32768 on),
// where no outgoing connection takes it while the sink is down.
func newRestartableSink(answer http.HandlerFunc) *restartableSink {
	s := &restartableSink{handler: answer}
	for s.srv == nil {
		s.addr = fmt.Sprintf("127.0.0.1:%d", 20000+rand.N(12000))
		s.listen()
	}
	DeferCleanup(func() { s.down() })
	return s
}

func (s *restartableSink) url() string { return "http://" + s.addr }

// listen starts serving on s.addr, if the port is free.
func (s *restartableSink) listen() bool {
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return false
	}
	s.srv = httptest.NewUnstartedServer(s.handler)
	_ = s.srv.Listener.Close()
	s.srv.Listener = l
	s.srv.Start()
	return true
}

// down closes the listener and every connection.
func (s *restartableSink) down() {
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// up serves again on the same address.
func (s *restartableSink) up() {
	GinkgoHelper()
	Eventually(s.listen).WithTimeout(10*time.Second).Should(BeTrue(), "listen on %s again", s.addr)
}

// jsonStream is a Stream of JSON events in ns, OrderPaid by default.
func jsonStream(ns, name string) *esv1.Stream {
	return &esv1.Stream{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       esv1.StreamSpec{ContentTypes: []esv1.ContentType{"application/json"}, DefaultEventName: "OrderPaid"},
	}
}

// createJSONStream creates a Stream of JSON events in ns and waits until it
// is active.
func createJSONStream(ctx context.Context, ns, name string) {
	GinkgoHelper()
	stream := jsonStream(ns, name)
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
	return createReactorUntil(ctx, ns, sink, change, "True/Running")
}

// createReactorUntil is createReactor waiting for the Ready condition
// ready ("status/reason") instead.
func createReactorUntil(ctx context.Context, ns, sink string, change func(*esv1.ReactorSpec), ready string) *esv1.Reactor {
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
		g.Expect(readyCondition(rx.Status.Conditions)).To(Equal(ready))
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

	It("cuts off an attempt at delivery.timeout and retries it, and dead-letters an event whose sink is always too slow",
		func(ctx SpecContext) {
			ns := newNamespace(ctx)
			createJSONStream(ctx, ns, "orders")
			// Key late-twice's event is answered only after the caller has
			// hung up on its first two attempts, at once on the third; key
			// always-late's never in time. A late answer waits for the caller
			// to hang up, or 10 s at most: far past the 1 s timeout.
			type attempt struct {
				hungUpAfter time.Duration // 0 when the sink answered
			}
			var (
				mu       sync.Mutex
				attempts = map[string][]attempt{} // by key, in arrival order
			)
			sink := loopbackSink(func(w http.ResponseWriter, r *http.Request) {
				// The whole body read, the server notices a hang-up.
				_, _ = io.Copy(io.Discard, r.Body)
				key := r.Header.Get("ce-partitionkey")
				mu.Lock()
				n := len(attempts[key])
				attempts[key] = append(attempts[key], attempt{})
				mu.Unlock()
				if key == "always-late" || n < 2 {
					start := time.Now()
					select {
					case <-r.Context().Done():
						mu.Lock()
						attempts[key][n].hungUpAfter = time.Since(start)
						mu.Unlock()
						return
					case <-time.After(10 * time.Second):
					}
				}
				w.WriteHeader(http.StatusOK)
			})
			rx := createReactor(ctx, ns, sink, func(s *esv1.ReactorSpec) {
				s.Delivery.Timeout = &metav1.Duration{Duration: time.Second}
			})
			url := fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/keys/", m.api, ns)
			postEvent(ctx, url+"late-twice/events", "application/json", []byte(`{}`))
			lateID, _, err := acceptedID(ctx, url+"always-late/events", []byte(`{}`))
			Expect(err).NotTo(HaveOccurred())

			// The default pipeline's Retry makes 5 attempts.
			eventuallyWithin(reactorCounts(ctx, rx), statusRefresh).Should(Equal("1/1"))
			mu.Lock()
			defer mu.Unlock()
			late := attempts["late-twice"]
			Expect(late).To(HaveLen(3), "two attempts cut off, a third answered; nothing after it")
			Expect(late[2].hungUpAfter).To(BeZero(), "the third attempt was answered")
			never := attempts["always-late"]
			Expect(never).To(HaveLen(5), "the pipeline's 5 attempts")
			for i, a := range append(late[:2:2], never...) {
				// Cut off by the 1 s timeout: not at once, and long before
				// the late answer would have come.
				Expect(a.hungUpAfter).To(BeNumerically(">=", 500*time.Millisecond), "attempt %d", i)
				Expect(a.hungUpAfter).To(BeNumerically("<", 5*time.Second), "attempt %d", i)
			}

			// Counted when the handler gave up; stored once the processor
			// has appended it.
			var dead []streamEvent
			eventuallyWithin(func() ([]streamEvent, error) {
				var err error
				dead, err = readStream(ctx, fmt.Sprintf("%s/v1/namespaces/%s/streams/dead/events", m.api, ns), 0)
				return dead, err
			}, 10*time.Second).Should(HaveLen(1), "only always-late's event is dead-lettered")
			Expect(dead[0].Headers).To(HaveKeyWithValue("x-dead-letter-event-id", lateID))
			Expect(dead[0].Headers).To(HaveKeyWithValue("x-dead-letter-handler", "reactor:"+ns+"/ship"))
			Expect(dead[0].Headers).To(HaveKeyWithValue("x-dead-letter-attempts", "5"))
			Expect(dead[0].Headers).To(HaveKeyWithValue("x-dead-letter-error", ContainSubstring("did not answer within 1s")))
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

// outagePoster posts order i to key order-(i%keys) of stream orders and a
// payment to stream payments, in turns, a pause apart, until stopped, and
// counts the 202s. Any other answer stops it, kept in err.
type outagePoster struct {
	orders, payments atomic.Int64
	stop             atomic.Bool
	done             chan struct{}
	mu               sync.Mutex
	err              error
}

func (p *outagePoster) start(ctx context.Context, api, ns string, keys int) {
	p.done = make(chan struct{})
	post := func(url string, body []byte, n *atomic.Int64) bool {
		if _, _, err := acceptedID(ctx, url, body); err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return false
		}
		n.Add(1)
		return true
	}
	go func() {
		defer close(p.done)
		for i := 0; !p.stop.Load(); i++ {
			order := fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/keys/order-%d/events", api, ns, i%keys)
			payment := fmt.Sprintf("%s/v1/namespaces/%s/streams/payments/events", api, ns)
			if !post(order, fmt.Appendf(nil, `{"n":%d}`, i), &p.orders) || !post(payment, []byte(`{}`), &p.payments) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	DeferCleanup(p.finish)
}

// finish stops posting and returns the first refusal, if any.
func (p *outagePoster) finish() error {
	p.stop.Store(true)
	<-p.done
	return p.failure()
}

func (p *outagePoster) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// withoutRepeats drops each element equal to the one before it: what a sink
// sees of events delivered again at once (at least once) reads as once.
func withoutRepeats(seen []int) []int {
	var out []int
	for i, n := range seen {
		if i == 0 || n != seen[i-1] {
			out = append(out, n)
		}
	}
	return out
}

var _ = Describe("a reactor whose sink is down", func() {
	It("keeps ingest, other streams and their projections flowing for the 30 s its sink is down, then delivers everything in key order",
		func(ctx SpecContext) {
			m := runManager("--allow-private-sinks")
			ns := newNamespace(ctx)
			createJSONStream(ctx, ns, "orders")
			createJSONStream(ctx, ns, "payments")
			Expect(k8sClient.Create(ctx, &esv1.Projection{
				ObjectMeta: metav1.ObjectMeta{Name: "payments", Namespace: ns},
				Spec: esv1.ProjectionSpec{
					Streams:   []string{"payments"},
					ReadModel: esv1.ReadModel{Type: esv1.ReadModelCount, Key: "all"},
				},
			})).To(Succeed())
			waitProjectionRunning(ctx, ns, "payments")
			// The default Retry gives up (and dead-letters) after 5 attempts
			// within 2 s; this one outlasts the outage.
			Expect(k8sClient.Create(ctx, &esv1.Pipeline{
				ObjectMeta: metav1.ObjectMeta{Name: "patient", Namespace: ns},
				Spec: esv1.PipelineSpec{Middleware: []esv1.Middleware{{
					Type: esv1.MiddlewareRetry,
					Retry: &esv1.RetrySettings{
						MaxAttempts:    1000,
						InitialBackoff: &metav1.Duration{Duration: 100 * time.Millisecond},
						MaxBackoff:     &metav1.Duration{Duration: time.Second},
					},
				}}},
			})).To(Succeed())

			const keys, maxInFlight = 8, 16
			var (
				mu   sync.Mutex
				seen = map[string][]int{} // each key's order numbers, as the sink took them
			)
			sink := newRestartableSink(func(w http.ResponseWriter, r *http.Request) {
				var payload struct{ N int }
				body, _ := io.ReadAll(r.Body)
				if err := json.Unmarshal(body, &payload); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				mu.Lock()
				seen[r.Header.Get("ce-partitionkey")] = append(seen[r.Header.Get("ce-partitionkey")], payload.N)
				mu.Unlock()
				w.WriteHeader(http.StatusOK)
			})
			taken := func() int {
				mu.Lock()
				defer mu.Unlock()
				n := 0
				for _, got := range seen {
					n += len(got)
				}
				return n
			}
			rx := createReactor(ctx, ns, sink.url(), func(s *esv1.ReactorSpec) {
				s.PipelineRef = &esv1.PipelineReference{Name: "patient"}
				s.Delivery = esv1.ReactorDelivery{Ordering: esv1.OrderingKeyOrdered, MaxInFlight: maxInFlight}
			})
			status := func() (esv1.ReactorStatus, error) {
				err := k8sClient.Get(ctx, client.ObjectKeyFromObject(rx), rx)
				return rx.Status, err
			}

			var poster outagePoster
			poster.start(ctx, m.api, ns, keys)
			eventuallyWithin(taken, 15*time.Second).Should(BeNumerically(">=", keys), "the sink takes orders before the outage")

			sink.down()
			outage := time.Now()
			ordersBefore, takenBefore := poster.orders.Load(), taken()
			var lagSeen int64
			projection := getJSON(ctx, fmt.Sprintf("%s/v1/namespaces/%s/projections/payments/keys/all", m.api, ns))
			for time.Since(outage) < 30*time.Second {
				// The projection over the other stream keeps up with what
				// was accepted, within seconds, all through the outage.
				paid := poster.payments.Load()
				eventuallyWithin(func() (int64, error) {
					body, err := projection()
					if err != nil {
						return 0, err
					}
					var n int64
					return n, json.Unmarshal([]byte(body), &n)
				}, 10*time.Second).Should(BeNumerically(">=", paid), "%s into the outage", time.Since(outage).Round(time.Second))
				Expect(poster.failure()).NotTo(HaveOccurred(), "ingest answers 202 to both streams")
				if st, err := status(); err == nil {
					lagSeen = max(lagSeen, st.Lag)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			// More orders were accepted than the reactor holds in its lanes
			// (4 x maxInFlight): its route fell behind, ingest did not wait.
			Expect(poster.orders.Load()-ordersBefore).To(BeNumerically(">", 4*maxInFlight),
				"orders accepted while the sink was down")
			Expect(taken()).To(Equal(takenBefore), "nothing delivered while the sink was down")
			Expect(lagSeen).To(BeNumerically(">", 0), "status.lag while the sink was down")

			sink.up()
			Expect(poster.finish()).To(Succeed())
			total := int(poster.orders.Load())
			// Every order reaches the sink, each key's in the order posted
			// (an order the sink takes twice in a row counts once).
			eventuallyWithin(func(g Gomega) {
				mu.Lock()
				defer mu.Unlock()
				g.Expect(seen).To(HaveLen(keys))
				for k := range keys {
					var want []int
					for n := k; n < total; n += keys {
						want = append(want, n)
					}
					g.Expect(withoutRepeats(seen[fmt.Sprintf("order-%d", k)])).To(Equal(want), "order-%d's orders, as the sink took them", k)
				}
			}, time.Minute).Should(Succeed())
			eventuallyWithin(func(g Gomega) {
				st, err := status()
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(st.Lag).To(BeZero())
				g.Expect(st.DeadLettered).To(BeZero())
				g.Expect(st.EventsDelivered).To(BeNumerically(">=", total))
			}, statusRefresh).Should(Succeed())
			dead, err := readStream(ctx, fmt.Sprintf("%s/v1/namespaces/%s/streams/dead/events", m.api, ns), 0)
			Expect(err).NotTo(HaveOccurred())
			Expect(dead).To(BeEmpty())
			GinkgoWriter.Printf("%d orders accepted, %d of them while the sink was down; highest lag seen %d\n",
				total, int64(total)-ordersBefore, lagSeen)
		}, SpecTimeout(2*time.Minute))
})
