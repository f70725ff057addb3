package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/controller"
	"github.com/eventsourcing-dev/eventsourcing-operator/test/natscluster"
)

// The leader-election timings of the replicas: short, so that a hand-over
// after a SIGKILL takes seconds (the survivor waits out the lease).
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = time.Second
)

// leaseName is the manager's Lease (its --leader-election-id default).
const leaseName = "eventsourcing-operator.eventsourcing.dev"

// natsReplicas are manager replicas on one NATS JetStream cluster of three
// nodes on loopback (test/natscluster), electing their leader with a Lease
// in namespace ns.
type natsReplicas struct {
	cluster *natscluster.Cluster
	ns      string
	// extra are flags every replica gets.
	extra []string
}

// startNATSReplicas starts the NATS cluster, with JetStream's own sync
// setting (docs/storage.md, "Durability"); the replicas start with run.
func startNATSReplicas(ns string, extra ...string) *natsReplicas {
	GinkgoHelper()
	bin, err := natscluster.Binary(repoRoot())
	Expect(err).NotTo(HaveOccurred())
	return &natsReplicas{cluster: natscluster.Start(GinkgoT(), natscluster.Options{Binary: bin}), ns: ns, extra: extra}
}

// run starts one more manager replica, every stream and bucket on all
// three nodes, and waits until it has opened the NATS store.
func (r *natsReplicas) run() *managerProcess {
	GinkgoHelper()
	m := runManager(append([]string{
		"--storage=nats", "--nats-url=" + r.cluster.URLs(), "--nats-replicas=3",
		"--leader-elect", "--leader-election-namespace=" + r.ns,
		"--leader-election-lease-duration=" + leaseDuration.String(),
		"--leader-election-renew-deadline=" + renewDeadline.String(),
		"--leader-election-retry-period=" + retryPeriod.String(),
	}, r.extra...)...)
	Eventually(func() string { return string(m.log.Contents()) }).WithTimeout(60*time.Second).WithPolling(20*time.Millisecond).
		Should(ContainSubstring(`"msg":"NATS storage"`), "the replica opens the NATS store")
	return m
}

// leads reports whether m has taken the Lease, as its leader election
// logs. The Lease's holder names a host and a random id, which does not tell
// two processes on one host apart.
func leads(m *managerProcess) bool {
	return strings.Contains(string(m.log.Contents()), `"msg":"Successfully acquired lease"`)
}

// leader waits until one of ms has taken the Lease and returns it, and
// the other ones.
func leader(ms ...*managerProcess) (*managerProcess, []*managerProcess) {
	GinkgoHelper()
	var lead *managerProcess
	var others []*managerProcess
	Eventually(func() int {
		lead, others = nil, nil
		n := 0
		for _, m := range ms {
			if leads(m) {
				lead = m
				n++
			} else {
				others = append(others, m)
			}
		}
		return n
	}).WithTimeout(60*time.Second).WithPolling(50*time.Millisecond).Should(Equal(1), "one replica takes the Lease")
	return lead, others
}

// leaseHolder is the holder identity of the replicas' Lease, "" while none
// holds it.
func (r *natsReplicas) leaseHolder(ctx context.Context) (string, error) {
	lease := &coordinationv1.Lease{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: leaseName}, lease); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if lease.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *lease.Spec.HolderIdentity, nil
}

// storedPayloads are the payloads of events, in stream order: what an
// Append read model over their stream holds.
func storedPayloads(events []streamEvent) []json.RawMessage {
	out := make([]json.RawMessage, len(events))
	for i, ev := range events {
		out[i] = ev.Payload
	}
	return out
}

// statusWatch polls a Projection's and a Reactor's status and keeps the
// first observation that went back: a counter lower than one seen before,
// or Ready no longer True/Running. Only the leader writes status, and a
// replica standing by has no figures to write (its counters are 0).
type statusWatch struct {
	mu   sync.Mutex
	back string
	stop func()
}

func watchStatus(ctx context.Context, projection *esv1.Projection, reactor *esv1.Reactor) *statusWatch {
	w := &statusWatch{}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	w.stop = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		var processed, delivered int64
		for ctx.Err() == nil {
			p, rx := &esv1.Projection{}, &esv1.Reactor{}
			if k8sClient.Get(ctx, client.ObjectKeyFromObject(projection), p) == nil &&
				k8sClient.Get(ctx, client.ObjectKeyFromObject(reactor), rx) == nil {
				var back string
				switch {
				case readyCondition(p.Status.Conditions) != "True/Running":
					back = "the Projection is " + readyCondition(p.Status.Conditions)
				case readyCondition(rx.Status.Conditions) != "True/Running":
					back = "the Reactor is " + readyCondition(rx.Status.Conditions)
				case p.Status.EventsProcessed < processed:
					back = fmt.Sprintf("the Projection's eventsProcessed went from %d to %d", processed, p.Status.EventsProcessed)
				case rx.Status.EventsDelivered < delivered:
					back = fmt.Sprintf("the Reactor's eventsDelivered went from %d to %d", delivered, rx.Status.EventsDelivered)
				}
				processed, delivered = p.Status.EventsProcessed, rx.Status.EventsDelivered
				if back != "" {
					w.mu.Lock()
					if w.back == "" {
						w.back = back
					}
					w.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

// wentBack stops the watch and returns what went back, "" if nothing did.
func (w *statusWatch) wentBack() string {
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.back
}

// itemsManifest is Stream items-events, the Append Projection items over it
// and Reactor ship delivering it to sink, as a user applies them.
func itemsManifest(sink string) string {
	return `apiVersion: eventsourcing.dev/v1alpha1
kind: Stream
metadata:
  name: items-events
spec:
  defaultEventName: ItemCreated
---
apiVersion: eventsourcing.dev/v1alpha1
kind: Projection
metadata:
  name: items
spec:
  streams: [items-events]
  readModel:
    type: Append
    key: items
---
apiVersion: eventsourcing.dev/v1alpha1
kind: Reactor
metadata:
  name: ship
spec:
  streams: [items-events]
  startFrom: Beginning
  sink:
    uri: ` + sink + `
`
}

// deleteReactor deletes Reactor ns/name while a manager still runs to
// remove its finalizer: namespaces outlive specs, and the managers of later
// specs would run it against a sink that is gone.
func deleteReactor(ctx context.Context, ns, name string) {
	rx := &esv1.Reactor{}
	Expect(client.IgnoreNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rx))).To(Succeed())
	Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, rx))).To(Succeed())
	Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKeyFromObject(rx), &esv1.Reactor{})
	}).WithTimeout(30 * time.Second).Should(Satisfy(apierrors.IsNotFound))
}

var _ = Describe("manager replicas on NATS JetStream", func() {
	It("share the events posted to either, the leader's projection folds them all, either answers the query, and the leader writes the status",
		func(ctx SpecContext) {
			ns := newNamespace(ctx)
			var taken sinkLog
			sink := loopbackSink(func(_ http.ResponseWriter, r *http.Request) { taken.take(r) })
			r := startNATSReplicas(ns, "--allow-private-sinks")
			a, b := r.run(), r.run()
			DeferCleanup(deleteReactor, ns, "ship", NodeTimeout(time.Minute))

			// Applied once, as a user would: both replicas take it up.
			manifest := filepath.Join(GinkgoT().TempDir(), "items.yaml")
			Expect(os.WriteFile(manifest, []byte(itemsManifest(sink)), 0o600)).To(Succeed())
			_, err := kubectl(ctx, "apply", "-n", ns, "-f", manifest)
			Expect(err).NotTo(HaveOccurred())
			p := &esv1.Projection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "items"}}
			rx := &esv1.Reactor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ship"}}
			eventuallyWithin(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
				g.Expect(readyCondition(p.Status.Conditions)).To(Equal("True/Running"))
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(rx), rx)).To(Succeed())
				g.Expect(readyCondition(rx.Status.Conditions)).To(Equal("True/Running"))
			}, 60*time.Second).Should(Succeed())
			// From now on the status only moves forward: the follower, which
			// has no figures, writes nothing over the leader's.
			watch, watched := watchStatus(ctx, p, rx), time.Now()

			// Events posted to both, in turn; a replica answers 404 until
			// its engine has the Stream.
			const posted = 20
			path := fmt.Sprintf("/v1/namespaces/%s/streams/items-events/events", ns)
			ids := make([]string, 0, posted)
			for i := range posted {
				api := []string{a.api, b.api}[i%2]
				var id string
				Eventually(func() (err error) {
					id, _, err = acceptedID(ctx, api+path, fmt.Appendf(nil, `{"n":%d}`, i))
					return err
				}).WithTimeout(30 * time.Second).Should(Succeed())
				ids = append(ids, id)
			}
			lead, followers := leader(a, b)
			follower := followers[0]

			// Every event is stored once, whichever replica reads the stream.
			var stored []streamEvent
			for _, m := range []*managerProcess{a, b} {
				eventuallyWithin(func(g Gomega) {
					var err error
					stored, err = readWholeStream(ctx, m.api+path)
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(stored).To(HaveLen(posted))
				}, 30*time.Second).Should(Succeed())
				storedIDs := make([]string, len(stored))
				for i, ev := range stored {
					storedIDs[i] = ev.ID
				}
				Expect(storedIDs).To(ConsistOf(ids))
			}

			// The leader's projection folds them all, and each replica
			// answers the query with the same document.
			query := fmt.Sprintf("/v1/namespaces/%s/projections/items", ns)
			eventuallyWithin(func() error { return foldDiff(getJSON(ctx, lead.api+query), storedPayloads(stored)) },
				30*time.Second).Should(Succeed())
			leaderDoc, err := getJSON(ctx, lead.api+query)()
			Expect(err).NotTo(HaveOccurred())
			Expect(getJSON(ctx, follower.api+query)()).To(MatchJSON(leaderDoc), "the follower answers the leader's document")

			// The leader's reactor delivered each of them.
			eventuallyWithin(func(g Gomega) {
				delivered := taken.ids()
				for _, id := range ids {
					g.Expect(delivered).To(HaveKey(id), "event %s never reached the sink", id)
				}
			}, 30*time.Second).Should(Succeed())

			// kubectl shows the leader's figures.
			eventuallyWithin(func(g Gomega) {
				out, err := kubectl(ctx, "get", "streams,projections,reactors", "-n", ns)
				g.Expect(err).NotTo(HaveOccurred())
				rows := kubectlTable(out)
				g.Expect(tableRow(rows, "items-events")).To(And(
					HaveKeyWithValue("READY", "True"), HaveKeyWithValue("LAST SEQUENCE", fmt.Sprint(posted))), out)
				g.Expect(tableRow(rows, "items")).To(And(
					HaveKeyWithValue("READY", "True"), HaveKeyWithValue("PROCESSED", fmt.Sprint(posted)),
					HaveKeyWithValue("LAG", "0")), out)
				g.Expect(tableRow(rows, "ship")).To(And(
					HaveKeyWithValue("READY", "True"), HaveKeyWithValue("DELIVERED", fmt.Sprint(posted)),
					HaveKeyWithValue("LAG", "0")), out)
			}, statusRefresh).Should(Succeed())
			// The follower's lists show the leader's figures too (from the
			// status it wrote), marked standby.
			eventuallyWithin(func(g Gomega) {
				projections, err := getJSON(ctx, follower.api+fmt.Sprintf("/v1/namespaces/%s/projections", ns))()
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(projections).To(MatchJSON(fmt.Sprintf(
					`{"items":[{"name":"items","eventsProcessed":%d,"deadLettered":0,"lag":0,"ready":true,"standby":true}]}`, posted)))
				reactors, err := getJSON(ctx, follower.api+fmt.Sprintf("/v1/namespaces/%s/reactors", ns))()
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(reactors).To(MatchJSON(fmt.Sprintf(
					`{"items":[{"name":"ship","eventsDelivered":%d,"deadLettered":0,"lag":0,"ready":true,"standby":true}]}`, posted)))
			}, statusRefresh).Should(Succeed())
			// The follower reconciles each change the leader writes: watch
			// for a refresh past the last one at least.
			time.Sleep(time.Until(watched.Add(controller.StatusRefresh + time.Second)))
			Expect(watch.wentBack()).To(BeEmpty())
			Expect(leads(follower)).To(BeFalse(), "the Lease stays with one replica")
		}, SpecTimeout(2*time.Minute))
})
