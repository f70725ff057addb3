package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// managerAccount is the ServiceAccount config/default runs the manager as.
const managerAccount = "eventsourcing-operator-controller-manager"

// managerUser is managerAccount's user name in TokenReviews and RBAC.
const managerUser = "system:serviceaccount:" + deployNamespace + ":" + managerAccount

// applyManagerIdentity creates, for real, the manager's Namespace,
// ServiceAccount and RBAC as config/default renders them, and nothing else.
func applyManagerIdentity(ctx context.Context) {
	GinkgoHelper()
	kinds := map[string]bool{
		"Namespace": true, "ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true,
		"Role": true, "RoleBinding": true,
	}
	list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List"}}
	for _, o := range renderKustomization(ctx, "config/default") {
		if kinds[o.GetKind()] {
			list.Items = append(list.Items, *o)
		}
	}
	data, err := list.MarshalJSON()
	Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(GinkgoT().TempDir(), "identity.json")
	Expect(os.WriteFile(path, data, 0o600)).To(Succeed())
	_, err = kubectl(ctx, "apply", "-f", path)
	Expect(err).NotTo(HaveOccurred())
}

// kubeconfigOfManagerAccount writes a kubeconfig for the suite's API server
// with a token of managerAccount, as a pod of the Deployment would have.
func kubeconfigOfManagerAccount(ctx context.Context) string {
	GinkgoHelper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: deployNamespace, Name: managerAccount}}
	tr := &authenticationv1.TokenRequest{}
	Expect(k8sClient.SubResource("token").Create(ctx, sa, tr)).To(Succeed())
	Expect(tr.Status.Token).NotTo(BeEmpty())

	cfg, err := clientcmd.LoadFromFile(kubeconfigPath)
	Expect(err).NotTo(HaveOccurred())
	for _, user := range cfg.AuthInfos {
		user.ClientCertificate, user.ClientKey = "", ""
		user.ClientCertificateData, user.ClientKeyData = nil, nil
		user.Token = tr.Status.Token
	}
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(clientcmd.WriteToFile(*cfg, path)).To(Succeed())
	return path
}

// tokenReview asks the API server whether token is valid for audience.
func tokenReview(ctx context.Context, token, audience string) authenticationv1.TokenReviewStatus {
	GinkgoHelper()
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
	Expect(k8sClient.Create(ctx, review)).To(Succeed())
	return review.Status
}

// managerMayCreateToken reports whether RBAC lets the manager create a
// token of ServiceAccount namespace/name.
func managerMayCreateToken(ctx context.Context, namespace, name string) bool {
	GinkgoHelper()
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   managerUser,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + deployNamespace, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: namespace, Verb: "create", Resource: "serviceaccounts", Subresource: "token", Name: name,
		},
	}}
	Expect(k8sClient.Create(ctx, review)).To(Succeed())
	return review.Status.Allowed
}

var _ = Describe("sink tokens of the manager binary", func() {
	It("sends, running as its ServiceAccount with the shipped RBAC only, a token of that account for the sink's audience",
		func(ctx SpecContext) {
			applyManagerIdentity(ctx)
			By("checking the shipped RBAC allows tokens of the manager's own ServiceAccount only")
			Expect(managerMayCreateToken(ctx, deployNamespace, managerAccount)).To(BeTrue())
			Expect(managerMayCreateToken(ctx, deployNamespace, "default")).To(BeFalse(), "another account of its namespace")
			Expect(managerMayCreateToken(ctx, "default", managerAccount)).To(BeFalse(), "the same name in another namespace")

			m := runManagerWith(kubeconfigOfManagerAccount(ctx), "--allow-private-sinks",
				"--token-service-account="+deployNamespace+"/"+managerAccount)
			ns := newNamespace(ctx)
			createJSONStream(ctx, ns, "orders")
			authorization := make(chan string, 10)
			sink := loopbackSink(func(w http.ResponseWriter, r *http.Request) {
				authorization <- r.Header.Get("Authorization")
				w.WriteHeader(http.StatusOK)
			})
			audience := "shipping-" + ns
			createReactor(ctx, ns, sink, func(s *esv1.ReactorSpec) { s.Sink.Audience = audience })
			postEvent(ctx, fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/events", m.api, ns), "application/json", []byte(`{}`))

			var header string
			Eventually(authorization).WithTimeout(15 * time.Second).Should(Receive(&header))
			token, found := strings.CutPrefix(header, "Bearer ")
			Expect(found).To(BeTrue(), "Authorization %q is not a bearer token", header)
			review := tokenReview(ctx, token, audience)
			Expect(review.Authenticated).To(BeTrue(), "TokenReview for %q: %s", audience, review.Error)
			Expect(review.User.Username).To(Equal(managerUser))
			Expect(review.Audiences).To(Equal([]string{audience}))
			Expect(tokenReview(ctx, token, "billing").Authenticated).To(BeFalse(), "the token of one sink is no good at another")
		}, SpecTimeout(2*time.Minute))

	It("refuses a Reactor with an audience when it knows no ServiceAccount, naming the flag to set", func(ctx SpecContext) {
		runManager("--allow-private-sinks")
		ns := newNamespace(ctx)
		createJSONStream(ctx, ns, "orders")
		rx := createReactorUntil(ctx, ns, "http://127.0.0.1:9/events",
			func(s *esv1.ReactorSpec) { s.Sink.Audience = "shipping" }, "False/InvalidSpec")
		Expect(apimeta.FindStatusCondition(rx.Status.Conditions, "Ready").Message).To(ContainSubstring("--token-service-account"))
	}, SpecTimeout(time.Minute))
})
