package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// readWholeStream reads every event of a stream, page by page.
func readWholeStream(ctx context.Context, url string) ([]streamEvent, error) {
	var all []streamEvent
	for {
		var after uint64
		if len(all) > 0 {
			after = all[len(all)-1].Sequence
		}
		page, err := readStream(ctx, url, after)
		if err != nil || len(page) == 0 {
			return all, err
		}
		all = append(all, page...)
	}
}

// sinkDelivery is one request a sink took in full: the event's id and key.
type sinkDelivery struct{ id, key string }

// sinkLog is what a sink took, in order. A delivery is a request whose body
// the sink has read in full; it is recorded then, before the answer, so one
// a SIGKILL cuts off before its answer counts as seen.
type sinkLog struct {
	mu         sync.Mutex
	deliveries []sinkDelivery
}

// take reads r's body and records the delivery; it reports false for a
// request cut off before its body ended.
func (s *sinkLog) take(r *http.Request) (sinkDelivery, bool) {
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return sinkDelivery{}, false
	}
	d := sinkDelivery{id: r.Header.Get("ce-id"), key: r.Header.Get("ce-partitionkey")}
	s.mu.Lock()
	s.deliveries = append(s.deliveries, d)
	s.mu.Unlock()
	return d, true
}

// len is the number of deliveries so far.
func (s *sinkLog) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.deliveries)
}

// all is every delivery so far, in order.
func (s *sinkLog) all() []sinkDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// ids is the set of event ids delivered so far.
func (s *sinkLog) ids() map[string]bool {
	ids := map[string]bool{}
	for _, d := range s.all() {
		ids[d.id] = true
	}
	return ids
}

var _ = Describe("a reactor on durable storage", func() {
	It("delivers every event at least once across SIGKILLs mid-delivery, each key's last deliveries in order, and stores each reply once",
		func(ctx SpecContext) {
			dataDir := GinkgoT().TempDir()
			ns := newNamespace(ctx)
			Expect(k8sClient.Create(ctx, jsonStream(ns, "orders"))).To(Succeed())
			Expect(k8sClient.Create(ctx, jsonStream(ns, "order-shipments"))).To(Succeed())

			var (
				taken  sinkLog
				inHand atomic.Int32
			)
			sink := loopbackSink(func(w http.ResponseWriter, r *http.Request) {
				inHand.Add(1)
				defer inHand.Add(-1)
				d, ok := taken.take(r)
				if !ok {
					return
				}
				// Long enough that a SIGKILL finds deliveries in hand.
				time.Sleep(5 * time.Millisecond)
				// A reply without an id: the Reactor derives one from the cause.
				w.Header().Set("ce-specversion", "1.0")
				w.Header().Set("ce-type", "ShipmentRequested")
				w.Header().Set("ce-source", "/shipping")
				w.Header().Set("ce-partitionkey", d.key)
				w.Header().Set("Content-Type", "application/json")
				_, _ = fmt.Fprintf(w, `{"order":%q}`, d.key)
			})
			rx := &esv1.Reactor{
				ObjectMeta: metav1.ObjectMeta{Name: "ship", Namespace: ns},
				Spec: esv1.ReactorSpec{
					Streams:   []string{"orders"},
					StartFrom: esv1.StartFromBeginning,
					Sink:      esv1.ReactorSink{URI: sink},
					Reply:     &esv1.ReactorReply{Stream: "order-shipments"},
					Delivery:  esv1.ReactorDelivery{Ordering: esv1.OrderingKeyOrdered, MaxInFlight: 16},
				},
			}
			Expect(k8sClient.Create(ctx, rx)).To(Succeed())
			// Registered before any manager starts, so it runs once every
			// one is killed: no manager is left to remove the finalizer.
			DeferCleanup(func(ctx context.Context) {
				Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, rx))).To(Succeed())
				Eventually(func() error {
					err := k8sClient.Get(ctx, client.ObjectKeyFromObject(rx), rx)
					if err != nil {
						return err
					}
					rx.Finalizers = nil
					return k8sClient.Update(ctx, rx)
				}).WithTimeout(30 * time.Second).Should(Satisfy(apierrors.IsNotFound))
			}, NodeTimeout(time.Minute))

			// Clients post keyed events throughout, each event until it
			// gets a 202, under the same Idempotency-Key.
			const clients, keys, kills, perRound = 6, 10, 3, 100
			nw := newNetwork(0)
			cc := startCrashClients(ctx, nw, clients, func(c, i int) string {
				return fmt.Sprintf("/v1/namespaces/%s/streams/orders/keys/order-%d/events", ns, (c+i)%keys)
			})
			defer cc.stop()
			cs, total := cc.clients, &cc.total

			var m *managerProcess
			for round := 0; round <= kills; round++ {
				m = runManager("--storage=disk", "--data-dir="+dataDir, "--allow-private-sinks")
				nw.use(m.api)
				want202s, wantDelivered := total.Load()+perRound, taken.len()+perRound
				Eventually(total.Load).WithTimeout(90*time.Second).Should(BeNumerically(">=", want202s),
					"round %d: the clients should get %d more 202s from the restarted manager", round, perRound)
				Eventually(taken.len).WithTimeout(90*time.Second).Should(BeNumerically(">=", wantDelivered),
					"round %d: the sink should take %d more deliveries from the restarted manager", round, perRound)
				if round < kills {
					Eventually(inHand.Load).WithTimeout(10*time.Second).WithPolling(time.Millisecond).
						Should(BeNumerically(">", 0), "round %d: a delivery in hand to kill the manager in", round)
					Expect(m.cmd.Process.Signal(syscall.SIGKILL)).To(Succeed())
					Eventually(m.exited).WithTimeout(10 * time.Second).Should(Receive())
				}
			}
			cc.stop()

			// The last manager delivers what is left: every event stored
			// (each that got a 202, and any whose 202 a SIGKILL cut off)
			// reaches the sink, and has a reply.
			ordersURL := fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/events", m.api, ns)
			repliesURL := fmt.Sprintf("%s/v1/namespaces/%s/streams/order-shipments/events", m.api, ns)
			var stored, replies []streamEvent
			eventuallyWithin(func(g Gomega) {
				var err error
				stored, err = readWholeStream(ctx, ordersURL)
				g.Expect(err).NotTo(HaveOccurred())
				replies, err = readWholeStream(ctx, repliesURL)
				g.Expect(err).NotTo(HaveOccurred())
				storedIDs, seenIDs, causes := map[string]bool{}, taken.ids(), map[string]bool{}
				for _, ev := range stored {
					storedIDs[ev.ID] = true
				}
				for _, reply := range replies {
					causes[reply.CausationID] = true
				}
				for _, c := range cs {
					for _, i := range c.accepted {
						g.Expect(storedIDs).To(HaveKey(c.key(i)), "event %s got a 202 and is not stored", c.key(i))
					}
				}
				for _, ev := range stored {
					g.Expect(seenIDs).To(HaveKey(ev.ID), "stored event %s (%s v%d) never reached the sink", ev.ID, ev.Key, ev.Version)
					g.Expect(causes).To(HaveKey(ev.ID), "stored event %s (%s v%d) has no reply", ev.ID, ev.Key, ev.Version)
				}
			}, 2*time.Minute).Should(Succeed())

			// No reply is stored twice: ids are derived from the cause, and
			// the stream stores an id once, however often its cause is
			// delivered.
			replyIDs, replyCauses := map[string]int{}, map[string]int{}
			for _, reply := range replies {
				replyIDs[reply.ID]++
				replyCauses[reply.CausationID]++
			}
			for id, n := range replyIDs {
				Expect(n).To(Equal(1), "reply %s stored %d times", id, n)
			}
			for cause, n := range replyCauses {
				Expect(n).To(Equal(1), "event %s has %d replies", cause, n)
			}
			Expect(replies).To(HaveLen(len(stored)), "one reply per event")

			// Per-key order in what the sink saw last: for each event, take
			// the position of its last delivery in the sink's log; along a
			// key's versions 1, 2, 3, ... those positions increase. A
			// restart delivers again from the checkpoint, so an event may
			// be seen twice, but the last time the sink sees a key's events
			// they come in the key's order: a sink that keeps the last
			// delivery of each event applies them in order.
			deliveries := taken.all()
			lastSeen := map[string]int{}
			for i, d := range deliveries {
				lastSeen[d.id] = i
			}
			byKey := map[string][]streamEvent{} // in stream order, which is version order
			for _, ev := range stored {
				Expect(ev.Version).To(BeEquivalentTo(len(byKey[ev.Key])+1), "%s: versions run from 1 without a gap", ev.Key)
				byKey[ev.Key] = append(byKey[ev.Key], ev)
			}
			Expect(byKey).To(HaveLen(keys))
			for key, events := range byKey {
				for v := 1; v < len(events); v++ {
					before, after := events[v-1], events[v]
					Expect(lastSeen[after.ID]).To(BeNumerically(">", lastSeen[before.ID]),
						"%s: the sink last saw v%d (delivery %d) before v%d (delivery %d)",
						key, after.Version, lastSeen[after.ID], before.Version, lastSeen[before.ID])
				}
			}
			redelivered := len(deliveries) - len(lastSeen)
			Expect(redelivered).To(BeNumerically(">", 0),
				"the SIGKILLs cut deliveries off: the restarted managers should deliver some events again")
			GinkgoWriter.Printf("%d events stored, %d deliveries (%d again after a SIGKILL), %d replies, over %d SIGKILLs\n",
				len(stored), len(deliveries), redelivered, len(replies), kills)
		}, SpecTimeout(3*time.Minute))
})
