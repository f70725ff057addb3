package controller_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo and Gomega are DSLs, dot-imported as their docs do
	. "github.com/onsi/gomega"    //nolint:revive // as above
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/controller"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

// replicaLabel marks the objects of a test's own replica (startFollower):
// the suite's manager leaves them alone.
const replicaLabel = "test.eventsourcing.dev/replica"

// leaseName is the leader-election Lease of a test's replica, in the
// test's namespace.
const leaseName = "replicas"

var _ = Describe("A replica that does not lead", func() {
	var (
		ns string
		f  *follower
	)
	BeforeEach(func() {
		ns = newNamespace()
		f = startFollower(ns)
	})

	It("applies every kind to its engine, serves ingest, and writes nothing to the API server", func() {
		objs := allKinds(ns, "http://127.0.0.1:9/events")
		for _, o := range objs {
			create(o)
		}
		f.eventuallyKnows()
		_, err := f.eng.Ingest(suiteCtx, engineName(ns, "orders"),
			[]core.Event{{Name: "OrderPaid", ContentType: "application/json", Payload: []byte(`{"n":1}`)}})
		Expect(err).NotTo(HaveOccurred(), "ingest into the replica's engine")

		Consistently(func(g Gomega) {
			for _, o := range objs {
				g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(o), o)).To(Succeed())
				g.Expect(o.GetFinalizers()).To(BeEmpty(), "finalizers of %T %s", o, o.GetName())
				g.Expect(conditions(o)).To(BeEmpty(), "status conditions of %T %s", o, o.GetName())
			}
			g.Expect(f.writes.Load()).To(BeZero(), "writes to the API server")
		}).Should(Succeed())
	})

	It("writes every kind's finalizer and status as soon as it is elected", func() {
		sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
		}))
		DeferCleanup(sink.Close)
		objs := allKinds(ns, sink.URL+"/events")
		for _, o := range objs {
			create(o)
		}
		f.eventuallyKnows()
		Expect(f.writes.Load()).To(BeZero(), "writes to the API server before the election")

		f.elect()

		// On a replica that does not lead, no refresh is due: a Stream or
		// Pipeline that does not change comes back only by the resync.
		eventuallyReady(objs[0], metav1.ConditionTrue, controller.ReasonActive)
		eventuallyReady(objs[1], metav1.ConditionTrue, controller.ReasonApplied)
		eventuallyReady(objs[2], metav1.ConditionTrue, controller.ReasonRunning)
		eventuallyReady(objs[3], metav1.ConditionTrue, controller.ReasonRunning)
		for _, o := range objs {
			Expect(o.GetFinalizers()).To(ContainElement(finalizer), "finalizers of %T %s", o, o.GetName())
		}
	})

	It("removes a deleted object from its engine and leaves the finalizer to the leader", func() {
		s := labelled(jsonStream(ns, "orders"))
		p := labelled(appendProjection(ns, "items", "orders"))
		for _, o := range []client.Object{s, p} {
			o.SetFinalizers([]string{finalizer}) // as the leader put it
			create(o)
		}
		Eventually(func() error {
			_, err := f.eng.ProjectionStats(suiteCtx, engineName(ns, "items"))
			return err
		}).Should(Succeed(), "the replica's engine has the projection")

		Expect(k8sClient.Delete(suiteCtx, s)).To(Succeed())
		Expect(k8sClient.Delete(suiteCtx, p)).To(Succeed())
		f.eventuallyForgets("orders", "items")
		Consistently(func(g Gomega) {
			for _, o := range []client.Object{s, p} {
				g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(o), o)).To(Succeed())
				g.Expect(o.GetFinalizers()).To(ConsistOf(finalizer), "finalizers of %T %s", o, o.GetName())
			}
			g.Expect(f.writes.Load()).To(BeZero(), "writes to the API server")
		}).Should(Succeed())

		f.elect()
		for _, o := range []client.Object{s, p} {
			Eventually(func() error {
				return k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(o), o)
			}).Should(Satisfy(apierrors.IsNotFound), "%T %s is still there once its replica leads", o, o.GetName())
		}
	})

	It("removes an object deleted before it had a finalizer from its engine", func() {
		s := labelled(jsonStream(ns, "orders"))
		p := labelled(appendProjection(ns, "items", "orders"))
		create(s)
		create(p)
		Eventually(func() error {
			_, err := f.eng.ProjectionStats(suiteCtx, engineName(ns, "items"))
			return err
		}).Should(Succeed(), "the replica's engine has the projection")

		// Without a finalizer the objects are gone at once: the replica
		// never sees them deleting.
		Expect(k8sClient.Delete(suiteCtx, s)).To(Succeed())
		Expect(k8sClient.Delete(suiteCtx, p)).To(Succeed())
		f.eventuallyForgets("orders", "items")
	})
})

// follower is another replica of the manager, as with --storage=nats: its
// own manager (leader election on, the Lease held by someone else until
// elect) with the four reconcilers on every replica, driving a standby
// engine of its own that runs once elected, as cmd/manager wires it. It
// sees only its namespace.
type follower struct {
	ns  string
	eng *core.Engine
	// writes counts the creates, updates, patches and deletes its
	// reconcilers send.
	writes *atomic.Int64
}

// startFollower starts a follower in ns and stops it when the test ends.
func startFollower(ns string) *follower {
	GinkgoHelper()
	create(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: leaseName},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To("the-leader"),
			LeaseDurationSeconds: ptr.To(int32(3600)),
			AcquireTime:          &metav1.MicroTime{Time: time.Now()},
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	})
	f := &follower{ns: ns, writes: &atomic.Int64{}}
	var err error
	f.eng, err = core.New(core.Config{
		Logger:            slog.New(slog.DiscardHandler),
		PollingInterval:   10 * time.Millisecond,
		StatsInterval:     100 * time.Millisecond,
		AllowPrivateSinks: true,
		Standby:           true,
	})
	Expect(err).NotTo(HaveOccurred())
	mgr, err := ctrl.NewManager(suiteConfig, ctrl.Options{
		Scheme:                 suiteScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		// The suite's manager has controllers of the same names.
		Controller:                    config.Controller{SkipNameValidation: ptr.To(true)},
		LeaderElection:                true,
		LeaderElectionID:              leaseName,
		LeaderElectionNamespace:       ns,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 ptr.To(4 * time.Second),
		RenewDeadline:                 ptr.To(3 * time.Second),
		RetryPeriod:                   ptr.To(100 * time.Millisecond),
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(mgr.Add(runWhenElected{f.eng})).To(Succeed())
	lead := &controller.Leadership{Elected: mgr.Elected()}
	c := countingWrites(mgr.GetClient(), f.writes)
	Expect((&controller.StreamReconciler{Client: c, Engine: f.eng, Leadership: lead}).SetupWithManager(mgr)).To(Succeed())
	Expect((&controller.PipelineReconciler{Client: c, Engine: f.eng, Leadership: lead}).SetupWithManager(mgr)).To(Succeed())
	Expect((&controller.ProjectionReconciler{Client: c, Engine: f.eng, Leadership: lead}).SetupWithManager(mgr)).To(Succeed())
	Expect((&controller.ReactorReconciler{Client: c, Engine: f.eng, Leadership: lead}).SetupWithManager(mgr)).To(Succeed())

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	DeferCleanup(func() {
		stop()
		Eventually(done, 30*time.Second).Should(Receive(BeNil()), "the replica's manager returns cleanly")
		Expect(f.eng.Close()).To(Succeed())
	})
	return f
}

// elect lets the follower take the Lease, as when the leader is gone.
func (f *follower) elect() {
	GinkgoHelper()
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: leaseName}}
	Expect(k8sClient.Delete(suiteCtx, lease)).To(Succeed())
}

// eventuallyKnows waits until the follower's engine has the Stream,
// Projection and Reactor of allKinds.
func (f *follower) eventuallyKnows() {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		_, err := f.eng.StreamStats(suiteCtx, engineName(f.ns, "orders"))
		g.Expect(err).NotTo(HaveOccurred(), "stream in the replica's engine")
		_, err = f.eng.ProjectionStats(suiteCtx, engineName(f.ns, "items"))
		g.Expect(err).NotTo(HaveOccurred(), "projection in the replica's engine")
		_, err = f.eng.ReactorStats(suiteCtx, engineName(f.ns, "ship"))
		g.Expect(err).NotTo(HaveOccurred(), "reactor in the replica's engine")
	}).Should(Succeed())
}

// eventuallyForgets waits until the follower's engine has neither the
// stream nor the projection.
func (f *follower) eventuallyForgets(stream, projection string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		_, err := f.eng.StreamStats(suiteCtx, engineName(f.ns, stream))
		g.Expect(err).To(MatchError(core.ErrStreamNotFound), "stream in the replica's engine")
		_, err = f.eng.ProjectionStats(suiteCtx, engineName(f.ns, projection))
		g.Expect(err).To(MatchError(core.ErrProjectionNotFound), "projection in the replica's engine")
	}).Should(Succeed())
}

// allKinds is one object of each kind for a follower, in the order Stream,
// Pipeline, Projection (through the Pipeline), Reactor (to sinkURI).
func allKinds(ns, sinkURI string) []client.Object {
	proj := appendProjection(ns, "items", "orders")
	proj.Spec.PipelineRef = &esv1.PipelineReference{Name: "default"}
	return []client.Object{
		labelled(jsonStream(ns, "orders")),
		labelled(pipeline(ns, "default", esv1.Middleware{Type: esv1.MiddlewareDeserialize})),
		labelled(proj),
		labelled(reactorOf(ns, "ship", esv1.ReactorSink{URI: sinkURI})),
	}
}

// labelled marks obj as a follower's, out of the suite manager's sight.
func labelled[T client.Object](obj T) T {
	obj.SetLabels(map[string]string{replicaLabel: "follower"})
	return obj
}

// runWhenElected runs the engine on the elected replica only, as
// cmd/manager's engine runnable does.
type runWhenElected struct{ eng *core.Engine }

func (r runWhenElected) Start(ctx context.Context) error { return r.eng.Run(ctx) }

func (runWhenElected) NeedLeaderElection() bool { return true }

// countingWrites wraps the manager's client c so that every write sent
// through it is counted in n.
func countingWrites(c client.Client, n *atomic.Int64) client.Client {
	count := func() { n.Add(1) }
	return interceptor.NewClient(withoutWatch{c}, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			count()
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			count()
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			count()
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			count()
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object,
			opts ...client.SubResourceUpdateOption,
		) error {
			count()
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch,
			opts ...client.SubResourcePatchOption,
		) error {
			count()
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
}
