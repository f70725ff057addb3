package controller_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo and Gomega are DSLs, dot-imported as their docs do
	. "github.com/onsi/gomega"    //nolint:revive // as above
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/controller"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

var _ = Describe("Stream", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("becomes Ready (Active) with its ingest path and observed generation", func() {
		s := jsonStream(ns, "items-events")
		create(s)

		cond := eventuallyReady(s, metav1.ConditionTrue, controller.ReasonActive)
		Expect(cond.Message).NotTo(BeEmpty())
		Expect(s.Status.IngestPath).To(Equal("/v1/namespaces/" + ns + "/streams/items-events/events"))
		Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
		Expect(s.Status.LastSequence).To(BeZero())
	})

	It("reports lastSequence and the projections subscribed to it", func() {
		s := jsonStream(ns, "items-events")
		create(s)
		create(appendProjection(ns, "items", "items-events"))
		eventuallyReady(s, metav1.ConditionTrue, controller.ReasonActive)

		ingestJSON(ns, "items-events", "ItemCreated", `{"foo":"a","n":1}`, `{"foo":"b","n":2}`, `{"foo":"c","n":3}`)

		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(s), s)).To(Succeed())
			g.Expect(s.Status.LastSequence).To(Equal(int64(3)), "status.lastSequence")
			g.Expect(s.Status.Subscribers).To(Equal(int32(1)), "status.subscribers")
		}).Should(Succeed())
	})

	It("reports InvalidSchema, with a message, for an Avro schema that does not parse", func() {
		s := &esv1.Stream{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "avro-events"},
			Spec: esv1.StreamSpec{
				ContentTypes: []esv1.ContentType{esv1.ContentTypeAvro},
				Schemas:      &esv1.StreamSchemas{Avro: `{"type":"record","name":"Item","fields":[{"name":"foo"`},
			},
		}
		create(s)

		cond := eventuallyReady(s, metav1.ConditionFalse, controller.ReasonInvalidSchema)
		Expect(cond.Message).To(ContainSubstring("Avro schema"))
		Expect(s.Status.ObservedGeneration).To(Equal(s.Generation), "a spec to fix is a verdict on this generation")
	})

	It("reports InvalidSchema, naming the type, for a protobuf message type that is not known", func() {
		s := &esv1.Stream{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unknown-proto-events"},
			Spec: esv1.StreamSpec{
				ContentTypes: []esv1.ContentType{esv1.ContentTypeProtobuf},
				Schemas:      &esv1.StreamSchemas{Protobuf: &esv1.ProtobufSchema{MessageType: "shop.v1.NoSuchItem"}},
			},
		}
		create(s)

		cond := eventuallyReady(s, metav1.ConditionFalse, controller.ReasonInvalidSchema)
		Expect(cond.Message).To(ContainSubstring("shop.v1.NoSuchItem"))
	})

	It("reports DescriptorSetNotFound until the ConfigMap exists, then becomes Ready by itself", func() {
		s := &esv1.Stream{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "proto-events"},
			Spec: esv1.StreamSpec{
				ContentTypes:     []esv1.ContentType{esv1.ContentTypeProtobuf},
				DefaultEventName: "ItemCreated",
				Schemas: &esv1.StreamSchemas{Protobuf: &esv1.ProtobufSchema{
					MessageType:      "items.v1.Item",
					DescriptorSetRef: &esv1.ConfigMapKeyReference{Name: "item-protos", Key: "items.pb"},
				}},
			},
		}
		create(s)
		cond := eventuallyReady(s, metav1.ConditionFalse, controller.ReasonDescriptorSetNotFound)
		Expect(cond.Message).To(And(ContainSubstring(`"item-protos"`), ContainSubstring(`"items.pb"`)),
			"the message names the ConfigMap and key to create")

		set, item := itemDescriptorSet()
		create(&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "item-protos"},
			BinaryData: map[string][]byte{"items.pb": set},
		})
		eventuallyReady(s, metav1.ConditionTrue, controller.ReasonActive)

		// The stream now takes payloads of the user's own message type.
		msg := dynamicpb.NewMessage(item)
		msg.Set(item.Fields().ByName("sku"), protoreflect.ValueOfString("a-1"))
		payload, err := proto.Marshal(msg)
		Expect(err).NotTo(HaveOccurred())
		_, err = eng.Ingest(suiteCtx, engineName(ns, "proto-events"),
			[]core.Event{{ContentType: "application/x-protobuf", Payload: payload}})
		Expect(err).NotTo(HaveOccurred(), "ingest an items.v1.Item")
	})

	It("gets the engine finalizer, and deleting it removes it from the engine", func() {
		s := jsonStream(ns, "items-events")
		create(s)
		eventuallyReady(s, metav1.ConditionTrue, controller.ReasonActive)

		expectDeletedWithFinalizer(s)
		_, err := eng.Ingest(suiteCtx, engineName(ns, "items-events"),
			[]core.Event{{ContentType: "application/json", Payload: []byte(`{}`)}})
		Expect(err).To(MatchError(core.ErrStreamNotFound), "ingest into a deleted stream")
	})

	It("refreshes its status every StatusRefresh while events arrive, not after each of its own patches", func() {
		s := jsonStream(ns, "busy")
		create(s)
		eventuallyReady(s, metav1.ConditionTrue, controller.ReasonActive)
		expectRefreshedNotChased(s, ns, "busy")
	})

	It("does not patch its status when nothing changes", func() {
		s := jsonStream(ns, "quiet")
		create(s)
		eventuallyReady(s, metav1.ConditionTrue, controller.ReasonActive)
		before := statusPatches.of(s)
		Expect(before).To(BeNumerically(">", 0), "the patch that made it Ready is counted")

		// Longer than one status refresh: the one place a plain wait is needed.
		time.Sleep(controller.StatusRefresh + 2*time.Second)

		Expect(statusPatches.of(s)).To(Equal(before), "status patches during a refresh with no traffic")
	})
})

// itemDescriptorSet is a serialized FileDescriptorSet, as protoc
// --descriptor_set_out writes it, of items/v1/item.proto: message
// items.v1.Item {string sku = 1; int32 n = 2;}. It returns the message's
// descriptor too, to build payloads.
func itemDescriptorSet() ([]byte, protoreflect.MessageDescriptor) {
	GinkgoHelper()
	field := func(name string, number int32, typ descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{
			Name:     proto.String(name),
			JsonName: proto.String(name),
			Number:   proto.Int32(number),
			Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			Type:     typ.Enum(),
		}
	}
	file := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("items/v1/item.proto"),
		Package: proto.String("items.v1"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Item"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("sku", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING),
				field("n", 2, descriptorpb.FieldDescriptorProto_TYPE_INT32),
			},
		}},
	}
	fd, err := protodesc.NewFile(file, nil)
	Expect(err).NotTo(HaveOccurred(), "the test's descriptor is valid")
	raw, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{file}})
	Expect(err).NotTo(HaveOccurred())
	return raw, fd.Messages().ByName("Item")
}
