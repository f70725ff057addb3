package controller_test

import (
	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo and Gomega are DSLs, dot-imported as their docs do
	. "github.com/onsi/gomega"    //nolint:revive // as above
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// The CRDs' OpenAPI schemas and CEL rules, enforced by the real API server.
var _ = Describe("CRD validation", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	chain := func(m ...esv1.Middleware) client.Object { return pipeline(ns, "p", m...) }
	projection := func(mutate func(*esv1.ProjectionSpec)) client.Object {
		p := appendProjection(ns, "p", "s")
		mutate(&p.Spec)
		return p
	}

	DescribeTable("the API server refuses",
		func(newObj func() client.Object, wantField, wantMessage string) {
			err := k8sClient.Create(suiteCtx, newObj())
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "create: got %v, want an Invalid error", err)
			Expect(err.Error()).To(ContainSubstring(wantField), "the error names the field")
			Expect(err.Error()).To(ContainSubstring(wantMessage), "the error says what to fix")
		},
		Entry("a Stream accepting application/avro without schemas.avro", func() client.Object {
			return &esv1.Stream{ObjectMeta: meta("s"), Spec: esv1.StreamSpec{
				ContentTypes: []esv1.ContentType{esv1.ContentTypeJSON, esv1.ContentTypeAvro},
			}}
		}, "spec.schemas.avro", "an Avro schema is required when contentTypes includes application/avro"),
		Entry("a Stream accepting application/x-protobuf without schemas.protobuf", func() client.Object {
			return &esv1.Stream{ObjectMeta: meta("s"), Spec: esv1.StreamSpec{
				ContentTypes: []esv1.ContentType{esv1.ContentTypeProtobuf},
				Schemas:      &esv1.StreamSchemas{Avro: `"string"`},
			}}
		}, "spec.schemas.protobuf", "a protobuf message type is required when contentTypes includes application/x-protobuf"),
		Entry("middleware settings on an entry of another type (retry on Logging)", func() client.Object {
			return chain(esv1.Middleware{Type: esv1.MiddlewareLogging, Retry: &esv1.RetrySettings{}})
		}, "spec.middleware[0].retry", "retry settings apply only to type Retry"),
		Entry("a Filter without an expression", func() client.Object {
			return chain(esv1.Middleware{Type: esv1.MiddlewareFilter})
		}, "spec.middleware[0].filter", "type Filter needs filter.expression"),
		Entry("a Timeout without after", func() client.Object {
			return chain(esv1.Middleware{Type: esv1.MiddlewareTimeout})
		}, "spec.middleware[0].timeout", "type Timeout needs timeout.after"),
		Entry("a Projection with both key and keyExpression", func() client.Object {
			return projection(func(s *esv1.ProjectionSpec) { s.ReadModel.KeyExpression = "event.payload.sku" })
		}, "spec.readModel", "set exactly one of key"),
		Entry("a Projection with neither key nor keyExpression", func() client.Object {
			return projection(func(s *esv1.ProjectionSpec) { s.ReadModel.Key = "" })
		}, "spec.readModel", "set exactly one of key"),
		Entry("a Projection with no streams", func() client.Object {
			return projection(func(s *esv1.ProjectionSpec) { s.Streams = []string{} })
		}, "spec.streams", "should have at least 1 items"),
		Entry("a Projection of type Reduce without reduce", func() client.Object {
			return projection(func(s *esv1.ProjectionSpec) { s.ReadModel.Type = esv1.ReadModelReduce })
		}, "spec.readModel", "type Reduce needs reduce: set reduce.initial (the state of a key before its first event)"),
		Entry("a Projection of type Append with reduce", func() client.Object {
			return projection(func(s *esv1.ProjectionSpec) {
				s.ReadModel.Reduce = &esv1.ReduceReadModel{Initial: "0", Expression: "state + 1"}
			})
		}, "spec.readModel", "reduce is only for type Reduce: remove reduce, or set type: Reduce"),
		Entry("a Reduce without an expression", func() client.Object {
			return projection(func(s *esv1.ProjectionSpec) {
				s.ReadModel.Type = esv1.ReadModelReduce
				s.ReadModel.Reduce = &esv1.ReduceReadModel{Initial: "0"}
			})
		}, "spec.readModel.reduce.expression", "should be at least 1 chars long"),
		Entry("an unknown readModel.type", func() client.Object {
			return projection(func(s *esv1.ProjectionSpec) { s.ReadModel.Type = "Sum" })
		}, "spec.readModel.type", `Unsupported value: "Sum"`),
		Entry("an unknown startFrom", func() client.Object {
			return projection(func(s *esv1.ProjectionSpec) { s.StartFrom = "Yesterday" })
		}, "spec.startFrom", `Unsupported value: "Yesterday"`),
		Entry("an unknown middleware type", func() client.Object {
			return chain(esv1.Middleware{Type: "Compress"})
		}, "spec.middleware[0].type", `Unsupported value: "Compress"`),
		Entry("a Stream with backlogLimit 0", func() client.Object {
			// The typed field omits 0 (it would be defaulted), so send it raw.
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": esv1.GroupVersion.String(),
				"kind":       "Stream",
				"metadata":   map[string]any{"namespace": ns, "name": "s"},
				"spec":       map[string]any{"backlogLimit": int64(0)},
			}}
			return u
		}, "spec.backlogLimit", "should be greater than or equal to 1"),
	)

	It("applies the defaults: contentTypes [application/json], backlogLimit 1000, startFrom Beginning", func() {
		s := &esv1.Stream{ObjectMeta: meta("s")}
		create(s)
		p := appendProjection(ns, "p", "s")
		create(p)

		Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(s), s)).To(Succeed())
		Expect(s.Spec.ContentTypes).To(Equal([]esv1.ContentType{esv1.ContentTypeJSON}))
		Expect(s.Spec.BacklogLimit).To(Equal(int32(1000)))
		Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		Expect(p.Spec.StartFrom).To(Equal(esv1.StartFromBeginning))
	})
})
