package controller_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo and Gomega are DSLs, dot-imported as their docs do
	. "github.com/onsi/gomega"    //nolint:revive // as above
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/controller"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
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

	It("refreshes its status every StatusRefresh while it consumes, not after each of its own patches", func() {
		create(jsonStream(ns, "items-events"))
		p := appendProjection(ns, "items", "items-events")
		create(p)
		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonRunning)
		expectRefreshedNotChased(p, ns, "items-events")
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

		// What a replica that does not lead lists for it: these figures.
		figures := controller.StatusFigures{Reader: k8sClient}
		f, ok := figures.ProjectionFigures(suiteCtx, ns, "by-sku")
		Expect(ok).To(BeTrue())
		Expect(f).To(Equal(httpapi.Figures{Handled: 2, DeadLettered: 1, Ready: true}))
		_, ok = figures.ProjectionFigures(suiteCtx, ns, "no-such-projection")
		Expect(ok).To(BeFalse(), "figures of a projection that does not exist")
	})

	It("folds a Reduce read model of each key", func() {
		create(jsonStream(ns, "orders"))
		p := reduceProjection(ns, "totals", "orders")
		create(p)
		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonRunning)

		ingestJSON(ns, "orders", "LineAdded", `{"order":"o-1","amount":30}`, `{"order":"o-2","amount":5}`, `{"order":"o-1","amount":12}`)
		Eventually(readModel).WithArguments(ns, "totals").Should(
			MatchJSON(`{"o-1":{"total":42,"lines":2},"o-2":{"total":5,"lines":1}}`))
		Expect(meta.FindStatusCondition(p.Status.Conditions, controller.ConditionRebuilding)).To(BeNil(),
			"a Projection never rebuilt has no Rebuilding condition")
	})

	It("reports InvalidSpec, with CEL's error and where, for a reduce expression that does not compile", func() {
		create(jsonStream(ns, "orders"))
		p := reduceProjection(ns, "totals", "orders")
		p.Spec.ReadModel.Reduce.Expression = "{'total': state.total + event.payload.amount, 'lines': state.lnes + 1"
		create(p)
		cond := eventuallyReady(p, metav1.ConditionFalse, controller.ReasonInvalidSpec)
		Expect(cond.Message).To(And(ContainSubstring("readModel.reduce.expression"), ContainSubstring("Syntax error"),
			ContainSubstring("<input>:1:")), "the message names the field and says what CEL refused where")

		p.Spec.ReadModel.Reduce.Expression = "event.time"
		Expect(k8sClient.Update(suiteCtx, p)).To(Succeed())
		cond = eventuallyReady(p, metav1.ConditionFalse, controller.ReasonInvalidSpec)
		Expect(cond.Message).To(ContainSubstring("gives google.protobuf.Timestamp, want a JSON value"))

		p.Spec.ReadModel.Reduce.Initial = "{'total': 0, 'lines': event.sequence}"
		p.Spec.ReadModel.Reduce.Expression = "state"
		Expect(k8sClient.Update(suiteCtx, p)).To(Succeed())
		cond = eventuallyReady(p, metav1.ConditionFalse, controller.ReasonInvalidSpec)
		Expect(cond.Message).To(And(ContainSubstring("readModel.reduce.initial"), ContainSubstring("undeclared reference to 'event'")))
	})

	It("keeps answering the previous read model while it rebuilds, with Rebuilding=True and its progress, then swaps", func() {
		create(jsonStream(ns, "orders"))
		p := &esv1.Projection{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "totals"},
			Spec: esv1.ProjectionSpec{
				Streams:   []string{"orders"},
				ReadModel: esv1.ReadModel{Type: esv1.ReadModelCount, Key: "events"},
			},
		}
		create(p)
		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonRunning)
		ingestJSON(ns, "orders", "LineAdded", `{"order":"o-1","amount":30}`, `{"order":"o-1","amount":12}`)
		Eventually(readModel).WithArguments(ns, "totals").Should(MatchJSON(`{"events":2}`))

		// The new read model waits for its pipeline, so the rebuild stays
		// in progress until the test creates it.
		Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		p.Spec.ReadModel = reduceProjection(ns, "", "").Spec.ReadModel
		p.Spec.PipelineRef = &esv1.PipelineReference{Name: "later"}
		Expect(k8sClient.Update(suiteCtx, p)).To(Succeed())
		eventuallyReady(p, metav1.ConditionFalse, controller.ReasonPipelineNotFound)
		rebuilding := meta.FindStatusCondition(p.Status.Conditions, controller.ConditionRebuilding)
		Expect(rebuilding).NotTo(BeNil())
		Expect(rebuilding.Status).To(Equal(metav1.ConditionTrue))
		Expect(rebuilding.Reason).To(Equal(controller.ReasonCatchingUp))
		Expect(rebuilding.Message).To(ContainSubstring("applied 0 of 2 events"))
		Consistently(readModel).WithArguments(ns, "totals").WithTimeout(time.Second).Should(MatchJSON(`{"events":2}`),
			"queries answer the previous read model during the rebuild")

		create(pipeline(ns, "later", esv1.Middleware{Type: esv1.MiddlewareDeserialize}))
		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonRunning)
		Eventually(readModel).WithArguments(ns, "totals").Should(MatchJSON(`{"o-1":{"total":42,"lines":2}}`))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			c := meta.FindStatusCondition(p.Status.Conditions, controller.ConditionRebuilding)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse), "Rebuilding (%s: %s)", c.Reason, c.Message)
			g.Expect(c.Reason).To(Equal(controller.ReasonRebuilt))
			g.Expect(p.Status.EventsProcessed).To(Equal(int64(2)), "status.eventsProcessed of the rebuilt read model")
		}).Should(Succeed())
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

// reduceProjection folds each order's total and line count from events
// with an order and an amount.
func reduceProjection(namespace, name string, streams ...string) *esv1.Projection {
	return &esv1.Projection{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: esv1.ProjectionSpec{
			Streams: streams,
			ReadModel: esv1.ReadModel{
				Type:          esv1.ReadModelReduce,
				KeyExpression: "event.payload.order",
				Reduce: &esv1.ReduceReadModel{
					Initial:    "{'total': 0, 'lines': 0}",
					Expression: "{'total': state.total + event.payload.amount, 'lines': state.lines + 1}",
				},
			},
		},
	}
}
