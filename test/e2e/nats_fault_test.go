package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/test/natscluster"
)

// streamLeader is the node that leads JetStream stream name, as the
// monitoring endpoint of a running node reports it.
func streamLeader(ctx context.Context, c *natscluster.Cluster, name string) (int, error) {
	var lastErr error
	for i := range natscluster.Size {
		resp, err := callAPI(ctx, http.MethodGet, c.MonitorURL(i)+"/jsz?accounts=true&streams=true", "", nil, nil)
		if err != nil {
			lastErr = err
			continue
		}
		var jsz struct {
			Accounts []struct {
				Streams []struct {
					Name    string `json:"name"`
					Cluster struct {
						Leader string `json:"leader"`
					} `json:"cluster"`
				} `json:"stream_detail"`
			} `json:"account_details"`
		}
		if err := json.Unmarshal(resp.body, &jsz); err != nil {
			return 0, fmt.Errorf("/jsz of node %d: %w", i, err)
		}
		for _, a := range jsz.Accounts {
			for _, s := range a.Streams {
				if s.Name != name || s.Cluster.Leader == "" {
					continue
				}
				for n := range natscluster.Size {
					if c.ServerName(n) == s.Cluster.Leader {
						return n, nil
					}
				}
			}
		}
		lastErr = fmt.Errorf("node %d knows no leader of %s", i, name)
	}
	return 0, lastErr
}

// eventsStream is the JetStream stream that holds the events of Stream
// ns/name: <prefix>_ES_ and the engine's name as one subject token, which
// keeps letters, digits and '-' and writes '/' as _2F
// (internal/engine/natsstore/names.go).
func eventsStream(ns, name string) string {
	return "es_ES_" + ns + "_2F" + name
}

var _ = Describe("manager replicas on NATS JetStream, SIGKILLed", func() {
	It(
		"keep every 202 once, keys' versions gapless and the read model a fold of the stream across SIGKILLs of the leader and a NATS node",
		func(ctx SpecContext) {
			ns := newNamespace(ctx)
			var taken sinkLog
			sink := loopbackSink(func(_ http.ResponseWriter, r *http.Request) { taken.take(r) })
			r := startNATSReplicas(ns, "--allow-private-sinks")
			applyItemsStream(ctx, ns)
			Expect(k8sClient.Create(ctx, &esv1.Reactor{
				ObjectMeta: metav1.ObjectMeta{Name: "ship", Namespace: ns},
				Spec: esv1.ReactorSpec{
					Streams: []string{"items-events"}, StartFrom: esv1.StartFromBeginning, Sink: esv1.ReactorSink{URI: sink},
				},
			})).To(Succeed())
			a, b := r.run(), r.run()
			DeferCleanup(deleteReactor, ns, "ship", NodeTimeout(time.Minute))
			// The leader's projection reads the stream, so the stream exists
			// before the clients append to it from both replicas.
			waitProjectionRunning(ctx, ns, "items")
			lead, others := leader(a, b)
			survivor := others[0]

			// Clients send to both replicas in turn; a request sent again
			// after an unknown outcome (no answer, a lost answer, a 503)
			// goes to the next replica. Unkeyed events with an
			// Idempotency-Key, and appends to two keys with If-Match on the
			// version read.
			streamPath := fmt.Sprintf("/v1/namespaces/%s/streams/items-events/events", ns)
			nw := newNetwork(16)
			// Appends and reads go to every replica in turn.
			use := nw.use
			use(lead.api, survivor.api)
			cc := startCrashClients(ctx, nw, 4, func(int, int) string { return streamPath })
			defer cc.stop()
			ledgers := []*keyLedger{{key: "account-a"}, {key: "account-b"}}
			keyPath := func(l *keyLedger) string {
				return fmt.Sprintf("/v1/namespaces/%s/streams/items-events/keys/%s/events", ns, l.key)
			}
			kw := startKeyWriters(ctx, nw, ledgers, []int{8, 4}, keyPath)
			defer kw.abandon()
			accepted := func() int64 { return cc.total.Load() + ledgers[0].accepted.Load() + ledgers[1].accepted.Load() }
			const perPhase = 100
			goOn := func(phase string) {
				GinkgoHelper()
				start, want := time.Now(), accepted()+perPhase
				Eventually(accepted).WithTimeout(60*time.Second).Should(BeNumerically(">=", want),
					"%s: the clients should get %d more 202s", phase, perPhase)
				GinkgoWriter.Printf("%s: %d more 202s in %s\n", phase, perPhase, time.Since(start).Round(time.Millisecond))
			}
			goOn("both replicas up")

			// SIGKILL the leader mid-stream, the answers of its last moments
			// lost: the clients send those requests again to the survivor.
			holder, err := r.leaseHolder(ctx)
			Expect(err).NotTo(HaveOccurred())
			nw.blackout.Store(true)
			time.Sleep(200 * time.Millisecond)
			Expect(lead.cmd.Process.Signal(syscall.SIGKILL)).To(Succeed())
			killed := time.Now()
			Eventually(lead.exited).WithTimeout(10 * time.Second).Should(Receive())
			use(survivor.api)
			nw.blackout.Store(false)
			Eventually(func() bool { return leads(survivor) }).WithTimeout(30*time.Second).WithPolling(10*time.Millisecond).
				Should(BeTrue(), "the survivor takes the Lease")
			handOver := time.Since(killed)
			Expect(r.leaseHolder(ctx)).NotTo(Equal(holder))
			// The survivor's projection runs: it folds an event posted now.
			marker := fmt.Appendf(nil, `{"marker":%q}`, ns)
			Eventually(func() error {
				_, _, err := acceptedID(ctx, survivor.api+streamPath, marker)
				return err
			}).WithTimeout(30 * time.Second).Should(Succeed())
			query := fmt.Sprintf("/v1/namespaces/%s/projections/items", ns)
			Eventually(getJSON(ctx, survivor.api+query)).WithTimeout(30*time.Second).WithPolling(20*time.Millisecond).
				Should(ContainSubstring(ns), "the survivor's projection folds what comes after the hand-over")
			folding := time.Since(killed)
			GinkgoWriter.Printf("hand-over after a SIGKILL of the leader: the survivor took the Lease after %s "+
				"and folded a new event after %s (lease %s, retry %s)\n",
				handOver.Round(time.Millisecond), folding.Round(time.Millisecond), leaseDuration, retryPeriod)
			// The lease runs out leaseDuration after the last renewal, and
			// the survivor tries to take it every retryPeriod (jittered up to
			// 2.2 times): 4 to 7 s, and slack for a loaded machine.
			Expect(handOver).To(BeNumerically("<", 15*time.Second), "the survivor takes over within seconds")
			goOn("the survivor alone")

			// SIGKILL the NATS node that leads the events' stream: JetStream
			// elects another leader among the two left, and the manager's
			// connection moves to a live node if it was on that one.
			node, err := streamLeader(ctx, r.cluster, eventsStream(ns, "items-events"))
			Expect(err).NotTo(HaveOccurred())
			r.cluster.Kill(node)
			goOn("a NATS node down")
			r.cluster.Restart(node)
			goOn("the NATS node back")

			// The killed manager comes back, as a follower.
			follower := r.run()
			use(follower.api, survivor.api)
			goOn("both replicas up again")
			cc.stop()
			writers := kw.finish()
			Expect(leads(follower)).To(BeFalse(), "the survivor keeps the Lease")

			resends := 0
			for _, w := range writers {
				Expect(w.faults).To(BeEmpty())
				resends += w.resends
			}
			// Each key's events are the acknowledged ones, at the versions
			// their 202s named, without a gap: read on the follower, which
			// took part of the appends.
			keyed, acceptedByTheKilled := 0, 0
			for _, l := range ledgers {
				acks := checkKeyAcks(ctx, writers, l, follower.api+keyPath(l))
				keyed += len(acks.ackedAt)
				for _, o := range acks.resent {
					if acks.acceptedAt[o.id].Before(killed) && o.answered.After(killed) {
						acceptedByTheKilled++
					}
				}
			}
			// The blackout before the SIGKILL left appends the killed leader
			// had stored: sent again to the survivor, each was answered with
			// its version, not stored again.
			Expect(acceptedByTheKilled).To(BeNumerically(">", 0),
				"appends accepted by the killed leader and acknowledged by the survivor")

			// Every event that got a 202 is stored exactly once; the last
			// request of each unkeyed client, cut off when the posting
			// stopped, may be stored too.
			var stored []streamEvent
			eventuallyWithin(func(g Gomega) {
				var err error
				stored, err = readWholeStream(ctx, survivor.api+streamPath)
				g.Expect(err).NotTo(HaveOccurred())
				ids := map[string]bool{}
				for _, ev := range stored {
					ids[ev.ID] = true
				}
				for _, c := range cc.clients {
					for _, i := range c.accepted {
						g.Expect(ids).To(HaveKey(c.key(i)), "event %s got a 202 and is not stored", c.key(i))
					}
				}
			}, 30*time.Second).Should(Succeed())
			seen := map[string]int{}
			versions := map[string]uint64{}
			for i, ev := range stored {
				Expect(ev.Sequence).To(BeEquivalentTo(i+1), "sequences are contiguous")
				seen[ev.ID]++
				if ev.Key != "" {
					versions[ev.Key]++
					Expect(ev.Version).To(Equal(versions[ev.Key]), "%s: versions run from 1 without a gap in the stream", ev.Key)
				}
			}
			for id, n := range seen {
				Expect(n).To(Equal(1), "event %s stored %d times", id, n)
			}
			unkeyed := 0
			for _, c := range cc.clients {
				unkeyed += len(c.accepted)
			}

			// The new leader's read model is the fold of the stored events,
			// and the follower answers the same document.
			var doc string
			eventuallyWithin(func() error {
				all, err := readWholeStream(ctx, survivor.api+streamPath)
				if err != nil {
					return err
				}
				if err := foldDiff(getJSON(ctx, survivor.api+query), storedPayloads(all)); err != nil {
					return err
				}
				doc, err = getJSON(ctx, survivor.api+query)()
				return err
			}, 60*time.Second).Should(Succeed())
			Expect(getJSON(ctx, follower.api+query)()).To(MatchJSON(doc), "the restarted replica serves the leader's read model")

			// The reactor's sink saw every stored event, some more than
			// once: the survivor delivers again from the last checkpoint.
			eventuallyWithin(func(g Gomega) {
				delivered := taken.ids()
				for _, ev := range stored {
					g.Expect(delivered).To(HaveKey(ev.ID), "stored event %s never reached the sink", ev.ID)
				}
			}, 60*time.Second).Should(Succeed())
			deliveries := taken.all()
			GinkgoWriter.Printf("%d events stored (%d unkeyed and %d keyed acknowledged, %d keyed accepted by the killed leader "+
				"and acknowledged by the survivor); appends sent again after an unknown outcome: %d; "+
				"%d deliveries to the sink (%d more than events)\n",
				len(stored), unkeyed, keyed, acceptedByTheKilled, resends, len(deliveries), len(deliveries)-len(taken.ids()))
		}, SpecTimeout(4*time.Minute))
})

var _ = Describe("manager replicas on NATS JetStream, SIGKILLed", func() {
	It("answer appends 503 within seconds, not 500, while JetStream elects the stream's leader", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		r := startNATSReplicas(ns)
		m := r.run()
		Expect(k8sClient.Create(ctx, jsonStream(ns, "orders"))).To(Succeed())
		url := fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/events", m.api, ns)
		Eventually(func() error {
			_, _, err := acceptedID(ctx, url, []byte(`{}`))
			return err
		}).WithTimeout(30 * time.Second).Should(Succeed())

		node, err := streamLeader(ctx, r.cluster, eventsStream(ns, "orders"))
		Expect(err).NotTo(HaveOccurred())
		r.cluster.Kill(node)
		// Post until the stream has a leader again and takes events: each
		// answer meanwhile says the event was not stored, so send it again.
		// An election takes a second or two: an answer takes no longer.
		client := &http.Client{Timeout: 10 * time.Second}
		var refusals []string
		accepted := 0
		deadline := time.Now().Add(60 * time.Second)
		for accepted < 3 && len(refusals) == 0 && time.Now().Before(deadline) {
			sent := time.Now()
			resp, err := callAPIWith(ctx, client, http.MethodPost, url, "application/json", []byte(`{}`), nil)
			switch {
			case err != nil:
				refusals = append(refusals, fmt.Sprintf("after %s: %v", time.Since(sent).Round(time.Millisecond), err))
			case resp.status == http.StatusAccepted:
				accepted++
			case resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "":
				refusals = append(refusals, fmt.Sprintf("after %s: %s", time.Since(sent).Round(time.Millisecond), resp))
			default:
				time.Sleep(50 * time.Millisecond)
			}
		}
		Expect(refusals).To(BeEmpty(), "while there is no leader: 503 with Retry-After, and nothing else")
		Expect(accepted).To(Equal(3), "the stream takes events again once it has a new leader")
	}, SpecTimeout(2*time.Minute))
})
