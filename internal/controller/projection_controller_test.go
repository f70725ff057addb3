package controller_test

import (
	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo and Gomega are DSLs, dot-imported as their docs do
	. "github.com/onsi/gomega"    //nolint:revive // as above
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/controller"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

var _ = Describe("Projection", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("becomes Ready (Running) with its query path", func() {
		create(jsonStream(ns, "items-events"))
		p := appendProjection(ns, "items", "items-events")
		create(p)

		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonRunning)
		Expect(p.Status.QueryPath).To(Equal("/v1/namespaces/" + ns + "/projections/items"))
		Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
	})

	It("folds the classic example into its read model and reports eventsProcessed and lag", func() {
		create(jsonStream(ns, "items-events"))
		p := appendProjection(ns, "items", "items-events")
		create(p)
		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonRunning)

		ingestJSON(ns, "items-events", "ItemCreated", `{"foo":"a","n":1}`, `{"foo":"b","n":2}`, `{"foo":"c","n":3}`)

		Eventually(readModel).WithArguments(ns, "items").Should(
			MatchJSON(`{"items":[{"foo":"a","n":1},{"foo":"b","n":2},{"foo":"c","n":3}]}`))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.EventsProcessed).To(Equal(int64(3)), "status.eventsProcessed")
			g.Expect(p.Status.Lag).To(BeZero(), "status.lag")
			g.Expect(p.Status.DeadLettered).To(BeZero(), "status.deadLettered")
		}).Should(Succeed())
	})

	It("reports StreamNotFound until the stream exists, then becomes Ready by itself", func() {
		p := appendProjection(ns, "items", "items-events")
		create(p)
		cond := eventuallyReady(p, metav1.ConditionFalse, controller.ReasonStreamNotFound)
		Expect(cond.Message).To(ContainSubstring(`"items-events"`), "the message names the missing stream")

		create(jsonStream(ns, "items-events"))
		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonRunning)
	})

	It("reports PipelineNotFound until the pipeline exists, then becomes Ready by itself", func() {
		create(jsonStream(ns, "items-events"))
		p := appendProjection(ns, "items", "items-events")
		p.Spec.PipelineRef = &esv1.PipelineReference{Name: "custom"}
		create(p)
		cond := eventuallyReady(p, metav1.ConditionFalse, controller.ReasonPipelineNotFound)
		Expect(cond.Message).To(ContainSubstring(`"custom"`), "the message names the missing pipeline")

		create(pipeline(ns, "custom", esv1.Middleware{Type: esv1.MiddlewareDeserialize}))
		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonRunning)
	})

	It("re-wires live when its pipeline is edited: events before and after the edit are each applied once", func() {
		create(jsonStream(ns, "items-events"))
		pipe := pipeline(ns, "custom", esv1.Middleware{Type: esv1.MiddlewareDeserialize})
		create(pipe)
		p := appendProjection(ns, "items", "items-events")
		p.Spec.PipelineRef = &esv1.PipelineReference{Name: "custom"}
		create(p)
		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonRunning)

		ingestJSON(ns, "items-events", "ItemCreated", `{"n":1}`)
		ingestJSON(ns, "items-events", "ItemDeleted", `{"n":2}`)
		Eventually(readModel).WithArguments(ns, "items").Should(MatchJSON(`{"items":[{"n":1},{"n":2}]}`))

		Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(pipe), pipe)).To(Succeed())
		pipe.Spec.Middleware = append(pipe.Spec.Middleware, esv1.Middleware{
			Type:   esv1.MiddlewareFilter,
			Filter: &esv1.FilterSettings{Expression: "event.name == 'ItemCreated'"},
		})
		Expect(k8sClient.Update(suiteCtx, pipe)).To(Succeed())
		Expect(pipe.Generation).To(Equal(int64(2)))
		eventuallyReady(pipe, metav1.ConditionTrue, controller.ReasonApplied)

		ingestJSON(ns, "items-events", "ItemCreated", `{"n":3}`)
		ingestJSON(ns, "items-events", "ItemDeleted", `{"n":4}`)
		ingestJSON(ns, "items-events", "ItemCreated", `{"n":5}`)

		// Skipped events count as processed: all five settle, the filtered
		// one is not in the read model, and none is applied twice.
		Eventually(func(g Gomega) {
			st, err := eng.ProjectionStats(suiteCtx, engineName(ns, "items"))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(st.Processed).To(Equal(uint64(5)), "events processed")
			g.Expect(st.Lag).To(BeZero(), "lag")
		}).Should(Succeed())
		Expect(readModel(ns, "items")).To(MatchJSON(`{"items":[{"n":1},{"n":2},{"n":3},{"n":5}]}`))
		Expect(p.Status.DeadLettered).To(BeZero())
	})

	It("dead-letters an event its keyExpression fails on and processes the others", func() {
		create(jsonStream(ns, "orders"))
		p := &esv1.Projection{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-sku"},
			Spec: esv1.ProjectionSpec{
				Streams:   []string{"orders"},
				ReadModel: esv1.ReadModel{Type: esv1.ReadModelCount, KeyExpression: "event.payload.sku"},
			},
		}
		create(p)
		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonRunning)

		ingestJSON(ns, "orders", "OrderPlaced", `{"sku":"a"}`, `{"nosku":true}`, `{"sku":"a"}`)

		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.DeadLettered).To(Equal(int64(1)), "status.deadLettered")
			g.Expect(p.Status.EventsProcessed).To(Equal(int64(2)), "status.eventsProcessed")
			g.Expect(p.Status.Lag).To(BeZero(), "status.lag")
		}).Should(Succeed())
		Expect(readModel(ns, "by-sku")).To(MatchJSON(`{"a":2}`))
		// The manager's --dead-letter-stream ("dead" here), in the projection's namespace.
		Eventually(func(g Gomega) {
			dead, err := eng.ReadStream(suiteCtx, engineName(ns, "dead"), 0, 10)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(dead).To(HaveLen(1), "events in the dead-letter stream")
			g.Expect(string(dead[0].Payload)).To(MatchJSON(`{"nosku":true}`))
		}).Should(Succeed())
		Expect(p.Status.Conditions).To(ContainElement(HaveField("Reason", controller.ReasonRunning)),
			"a dead-lettered event does not stall the projection")
	})

	It("gets the engine finalizer, and deleting it removes it and its read model from the engine", func() {
		create(jsonStream(ns, "items-events"))
		p := appendProjection(ns, "items", "items-events")
		create(p)
		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonRunning)
		Expect(readModel(ns, "items")).To(MatchJSON(`{}`))

		expectDeletedWithFinalizer(p)
		_, err := eng.Query(suiteCtx, engineName(ns, "items"))
		Expect(err).To(MatchError(core.ErrProjectionNotFound), "query a deleted projection")
	})
})
