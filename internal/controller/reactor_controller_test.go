package controller_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo and Gomega are DSLs, dot-imported as their docs do
	. "github.com/onsi/gomega"    //nolint:revive // as above
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/controller"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
)

var _ = Describe("Reactor", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("waits for its Service with SinkNotFound and starts when it appears", func() {
		create(jsonStream(ns, "orders"))
		rx := reactorOf(ns, "ship", esv1.ReactorSink{
			Ref:  &esv1.SinkReference{Kind: "Service", Name: "shipping", Port: 8080},
			Path: "/events",
		})
		create(rx)
		cond := eventuallyReady(rx, metav1.ConditionFalse, controller.ReasonSinkNotFound)
		Expect(cond.Message).To(ContainSubstring(`"shipping"`), "the message names the missing Service")
		Expect(rx.Status.SinkURI).To(BeEmpty())
		_, err := eng.ReactorStats(suiteCtx, engineName(ns, "ship"))
		Expect(err).To(MatchError(core.ErrReactorNotFound), "nothing runs in the engine without a sink")

		create(&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shipping"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}},
		})
		eventuallyReady(rx, metav1.ConditionTrue, controller.ReasonRunning)
		Expect(rx.Status.SinkURI).To(Equal("http://shipping." + ns + ".svc.cluster.local:8080/events"))
		Expect(rx.Status.ObservedGeneration).To(Equal(rx.Generation))
		_, err = eng.ReactorStats(suiteCtx, engineName(ns, "ship"))
		Expect(err).NotTo(HaveOccurred())
	})

	It("delivers to a uri sink and reports eventsDelivered and lag", func() {
		var received atomic.Int64
		sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			received.Add(1)
			w.WriteHeader(http.StatusOK)
		}))
		DeferCleanup(sink.Close)
		create(jsonStream(ns, "orders"))
		rx := reactorOf(ns, "ship", esv1.ReactorSink{URI: sink.URL + "/events"})
		create(rx)
		eventuallyReady(rx, metav1.ConditionTrue, controller.ReasonRunning)
		Expect(rx.Status.SinkURI).To(Equal(sink.URL + "/events"))

		ingestJSON(ns, "orders", "OrderPaid", `{"n":1}`, `{"n":2}`, `{"n":3}`)

		Eventually(received.Load).Should(Equal(int64(3)), "events the sink received")
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(rx), rx)).To(Succeed())
			g.Expect(rx.Status.EventsDelivered).To(Equal(int64(3)), "status.eventsDelivered")
			g.Expect(rx.Status.Lag).To(BeZero(), "status.lag")
			g.Expect(rx.Status.DeadLettered).To(BeZero(), "status.deadLettered")
		}).Should(Succeed())
		// What a replica that does not lead lists for it: these figures.
		f, ok := controller.StatusFigures{Reader: k8sClient}.ReactorFigures(suiteCtx, ns, "ship")
		Expect(ok).To(BeTrue())
		Expect(f).To(Equal(httpapi.Figures{Handled: 3, Ready: true}))
	})

	It("refreshes its status every StatusRefresh while it delivers, not after each of its own patches", func() {
		sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
		}))
		DeferCleanup(sink.Close)
		create(jsonStream(ns, "orders"))
		rx := reactorOf(ns, "ship", esv1.ReactorSink{URI: sink.URL})
		create(rx)
		eventuallyReady(rx, metav1.ConditionTrue, controller.ReasonRunning)
		expectRefreshedNotChased(rx, ns, "orders")
	})

	It("reports StreamNotFound for a missing reply stream, then becomes Ready by itself", func() {
		create(jsonStream(ns, "orders"))
		rx := reactorOf(ns, "ship", esv1.ReactorSink{URI: "https://shipping.example.com/events"})
		rx.Spec.Reply = &esv1.ReactorReply{Stream: "orders-shipped"}
		create(rx)
		cond := eventuallyReady(rx, metav1.ConditionFalse, controller.ReasonStreamNotFound)
		Expect(cond.Message).To(ContainSubstring(`"orders-shipped"`), "the message names the missing stream")

		create(jsonStream(ns, "orders-shipped"))
		eventuallyReady(rx, metav1.ConditionTrue, controller.ReasonRunning)
	})

	It("reports PipelineNotFound until the pipeline exists", func() {
		create(jsonStream(ns, "orders"))
		rx := reactorOf(ns, "ship", esv1.ReactorSink{URI: "https://shipping.example.com/events"})
		rx.Spec.PipelineRef = &esv1.PipelineReference{Name: "custom"}
		create(rx)
		eventuallyReady(rx, metav1.ConditionFalse, controller.ReasonPipelineNotFound)

		create(pipeline(ns, "custom", esv1.Middleware{Type: esv1.MiddlewareDeserialize}))
		eventuallyReady(rx, metav1.ConditionTrue, controller.ReasonRunning)
	})

	It("sends its sink a token of the manager's ServiceAccount that a TokenReview accepts for its audience only", func() {
		authorization := make(chan string, 10)
		sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			authorization <- r.Header.Get("Authorization")
			w.WriteHeader(http.StatusOK)
		}))
		DeferCleanup(sink.Close)
		create(jsonStream(ns, "orders"))
		rx := reactorOf(ns, "ship", esv1.ReactorSink{URI: sink.URL, Audience: "shipping-" + ns})
		create(rx)
		eventuallyReady(rx, metav1.ConditionTrue, controller.ReasonRunning)

		ingestJSON(ns, "orders", "OrderPaid", `{"n":1}`)
		var header string
		Eventually(authorization).Should(Receive(&header))
		token, found := strings.CutPrefix(header, "Bearer ")
		Expect(found).To(BeTrue(), "Authorization %q is not a bearer token", header)

		review := tokenReview(token, "shipping-"+ns)
		Expect(review.Status.Authenticated).To(BeTrue(), "TokenReview error: %s", review.Status.Error)
		Expect(review.Status.User.Username).To(Equal("system:serviceaccount:es-system:controller-manager"))
		Expect(review.Status.Audiences).To(Equal([]string{"shipping-" + ns}))
		Expect(tokenReview(token, "billing").Status.Authenticated).To(BeFalse(), "a token for another audience")
	})

	It("reports Stalled while no token can be had for its audience, and runs once one can", func() {
		sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
		DeferCleanup(sink.Close)
		audience := "refused-" + ns
		sinkTokens.refused.Store(audience, errors.New(`serviceaccounts "controller-manager" is forbidden`))
		DeferCleanup(func() { sinkTokens.refused.Delete(audience) })
		create(jsonStream(ns, "orders"))
		rx := reactorOf(ns, "ship", esv1.ReactorSink{URI: sink.URL, Audience: audience})
		create(rx)
		cond := eventuallyReady(rx, metav1.ConditionFalse, controller.ReasonStalled)
		Expect(cond.Message).To(And(ContainSubstring("spec.sink.audience"), ContainSubstring("forbidden")))

		sinkTokens.refused.Delete(audience)
		eventuallyReady(rx, metav1.ConditionTrue, controller.ReasonRunning)
	})

	It("is removed from the engine before it is deleted (finalizer)", func() {
		create(jsonStream(ns, "orders"))
		rx := reactorOf(ns, "ship", esv1.ReactorSink{URI: "https://shipping.example.com/events"})
		create(rx)
		eventuallyReady(rx, metav1.ConditionTrue, controller.ReasonRunning)
		_, err := eng.ReactorStats(suiteCtx, engineName(ns, "ship"))
		Expect(err).NotTo(HaveOccurred())

		expectDeletedWithFinalizer(rx)
		_, err = eng.ReactorStats(suiteCtx, engineName(ns, "ship"))
		Expect(err).To(MatchError(core.ErrReactorNotFound))
	})

	DescribeTable("the API server refuses",
		func(sink esv1.ReactorSink, delivery esv1.ReactorDelivery, want string) {
			rx := reactorOf(ns, "bad", sink)
			rx.Spec.Delivery = delivery
			err := k8sClient.Create(suiteCtx, rx)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			Expect(err.Error()).To(ContainSubstring(want))
		},
		Entry("both ref and uri", esv1.ReactorSink{
			Ref: &esv1.SinkReference{Name: "shipping", Port: 80}, URI: "https://a.example.com",
		}, esv1.ReactorDelivery{}, "set exactly one of ref"),
		Entry("neither ref nor uri", esv1.ReactorSink{Audience: "x"}, esv1.ReactorDelivery{}, "set exactly one of ref"),
		Entry("a uri that is not http(s)", esv1.ReactorSink{URI: "ftp://a.example.com"}, esv1.ReactorDelivery{},
			"uri must be an http:// or https:// URL"),
		Entry("maxInFlight over 1000", esv1.ReactorSink{URI: "https://a.example.com"},
			esv1.ReactorDelivery{MaxInFlight: 1001}, "spec.delivery.maxInFlight"),
		Entry("a timeout over 5m", esv1.ReactorSink{URI: "https://a.example.com"},
			esv1.ReactorDelivery{Timeout: &metav1.Duration{Duration: 301e9}}, "must be a duration from 1s to 5m"),
	)

	It("the API server defaults the delivery settings", func() {
		rx := reactorOf(ns, "defaults", esv1.ReactorSink{URI: "https://a.example.com"})
		create(rx)
		Expect(rx.Spec.Delivery.Ordering).To(Equal(esv1.OrderingKeyOrdered))
		Expect(rx.Spec.Delivery.MaxInFlight).To(Equal(int32(16)))
		Expect(rx.Spec.Delivery.Timeout).To(Equal(ptr.To(metav1.Duration{Duration: 10e9})))
		Expect(rx.Spec.StartFrom).To(Equal(esv1.StartFromLatest))
	})
})

// reactorOf is a Reactor of the stream orders posting to sink.
func reactorOf(namespace, name string, sink esv1.ReactorSink) *esv1.Reactor {
	return &esv1.Reactor{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       esv1.ReactorSpec{Streams: []string{"orders"}, Sink: sink},
	}
}

// tokenReview asks the API server whether token is valid for audience.
func tokenReview(token, audience string) *authenticationv1.TokenReview {
	GinkgoHelper()
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
	Expect(k8sClient.Create(suiteCtx, review)).To(Succeed())
	return review
}
