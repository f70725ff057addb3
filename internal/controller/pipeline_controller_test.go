package controller_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo and Gomega are DSLs, dot-imported as their docs do
	. "github.com/onsi/gomega"    //nolint:revive // as above
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/controller"
)

var _ = Describe("Pipeline", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("becomes Ready (Applied) with its observed generation", func() {
		p := pipeline(ns, "default",
			esv1.Middleware{Type: esv1.MiddlewareDeserialize},
			esv1.Middleware{Type: esv1.MiddlewareLogging, Logging: &esv1.LoggingSettings{Level: esv1.LogLevelInfo}},
			esv1.Middleware{Type: esv1.MiddlewareRetry},
			esv1.Middleware{Type: esv1.MiddlewareMetrics},
			esv1.Middleware{Type: esv1.MiddlewareDedupe},
			esv1.Middleware{Type: esv1.MiddlewareTimeout, Timeout: &esv1.TimeoutSettings{After: metav1.Duration{Duration: 5 * time.Second}}},
			esv1.Middleware{Type: esv1.MiddlewareFilter, Filter: &esv1.FilterSettings{Expression: "event.name == 'ItemCreated'"}},
		)
		create(p)

		eventuallyReady(p, metav1.ConditionTrue, controller.ReasonApplied)
		Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
	})

	It("reports InvalidSpec with CEL's message for a Filter that does not compile", func() {
		p := pipeline(ns, "broken",
			esv1.Middleware{Type: esv1.MiddlewareFilter, Filter: &esv1.FilterSettings{Expression: "event.name =="}})
		create(p)

		cond := eventuallyReady(p, metav1.ConditionFalse, controller.ReasonInvalidSpec)
		Expect(cond.Message).To(ContainSubstring("Syntax error"), "the message carries CEL's compile error")
		Expect(cond.Message).To(ContainSubstring("event.name =="), "the message shows the expression")
	})

	It("gets the engine finalizer, and deleting it pauses the projections that use it", func() {
		create(jsonStream(ns, "items-events"))
		p := pipeline(ns, "default", esv1.Middleware{Type: esv1.MiddlewareDeserialize})
		create(p)
		proj := appendProjection(ns, "items", "items-events")
		proj.Spec.PipelineRef = &esv1.PipelineReference{Name: "default"}
		create(proj)
		eventuallyReady(proj, metav1.ConditionTrue, controller.ReasonRunning)

		expectDeletedWithFinalizer(p)
		eventuallyReady(proj, metav1.ConditionFalse, controller.ReasonPipelineNotFound)
	})
})

// pipeline is a Pipeline with the given chain.
func pipeline(namespace, name string, middleware ...esv1.Middleware) *esv1.Pipeline {
	return &esv1.Pipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       esv1.PipelineSpec{Middleware: middleware},
	}
}
