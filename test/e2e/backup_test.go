package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// backupToken is a ServiceAccount token allowed GET /backup, as the
// shipped ClusterRole config/rbac/backup_role.yaml allows it.
func backupToken(ctx context.Context, ns string) string {
	return tokenAllowedGet(ctx, ns, "backup", "/backup")
}

// tokenAllowedGet is the token of a new ServiceAccount name in ns, bound to
// a ClusterRole that allows get on the non-resource URL path.
func tokenAllowedGet(ctx context.Context, ns, name, path string) string {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	Expect(k8sClient.Create(ctx, sa)).To(Succeed())
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{path}, Verbs: []string{"get"}}},
	}
	Expect(k8sClient.Create(ctx, role)).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: ns}},
	})).To(Succeed())
	tr := &authenticationv1.TokenRequest{}
	Expect(k8sClient.SubResource("token").Create(ctx, sa, tr)).To(Succeed())
	return tr.Status.Token
}

// getBackup GETs https://addr/backup with token ("" sends none).
func getBackup(ctx context.Context, addr, token string) (int, []byte, error) {
	return getSecure(ctx, addr, "/backup", token)
}

// getSecure GETs https://addr+path, the manager's metrics endpoint, with
// token ("" sends none).
func getSecure(ctx context.Context, addr, path, token string) (int, []byte, error) {
	// The manager's metrics endpoint serves a self-signed certificate.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

var _ = Describe("backup and restore", func() {
	It("serves an online snapshot only to callers allowed GET /backup, and a new manager restored from it has every event and read model",
		func(ctx SpecContext) {
			ns := newNamespace(ctx)
			applyItemsStream(ctx, ns)

			metricsAddr := freeLoopbackAddress()
			m := runManager("--storage=disk", "--data-dir="+GinkgoT().TempDir(),
				"--metrics-bind-address="+metricsAddr, "--metrics-secure=true")
			events := fmt.Sprintf("%s/v1/namespaces/%s/streams/items-events/events", m.api, ns)
			query := fmt.Sprintf("%s/v1/namespaces/%s/projections/items", m.api, ns)
			Eventually(func() (int, error) {
				r, err := callAPI(ctx, http.MethodPost, events, "application/json", []byte(`{"n":0}`), http.Header{"Idempotency-Key": {"e0"}})
				return r.status, err
			}).WithTimeout(60 * time.Second).Should(Equal(http.StatusAccepted))
			for i := 1; i < 20; i++ {
				postEvent(ctx, events, "application/json", fmt.Appendf(nil, `{"n":%d}`, i))
			}
			var model string
			Eventually(func(g Gomega) {
				body, err := getJSON(ctx, query)()
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(body).To(ContainSubstring(`{"n":19}`))
				model = body
			}).WithTimeout(30 * time.Second).Should(Succeed())

			By("refusing callers without a valid token")
			Eventually(func() (int, error) { s, _, err := getBackup(ctx, metricsAddr, ""); return s, err }).
				WithTimeout(30 * time.Second).Should(Equal(http.StatusUnauthorized))
			status, body, err := getBackup(ctx, metricsAddr, "not-a-token")
			Expect(err).NotTo(HaveOccurred())
			Expect(status).To(Equal(http.StatusUnauthorized), "a token the API server does not know; body %s", body)

			By("taking a snapshot while the manager runs")
			token := backupToken(ctx, ns)
			var snapshot []byte
			Eventually(func() (int, error) {
				s, body, err := getBackup(ctx, metricsAddr, token)
				snapshot = body
				return s, err
			}).WithTimeout(30 * time.Second).Should(Equal(http.StatusOK))
			file := filepath.Join(GinkgoT().TempDir(), "snapshot.db")
			Expect(os.WriteFile(file, snapshot, 0o600)).To(Succeed())
			Expect(m.cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
			Eventually(m.exited).WithTimeout(40 * time.Second).Should(Receive(BeNil()))

			By("restoring it into a new manager with an empty data directory")
			restored := runManager("--storage=disk", "--data-dir="+GinkgoT().TempDir(), "--restore-from="+file)
			Eventually(getJSON(ctx, fmt.Sprintf("%s/v1/namespaces/%s/projections/items", restored.api, ns))).
				WithTimeout(60 * time.Second).Should(MatchJSON(model))
			// The Stream reaches the new manager's engine when its controller
			// has reconciled it, which may be after the read model answers.
			var stored []streamEvent
			Eventually(func() (err error) {
				stored, err = readStream(ctx, fmt.Sprintf("%s/v1/namespaces/%s/streams/items-events/events", restored.api, ns), 0)
				return err
			}).WithTimeout(60 * time.Second).Should(Succeed())
			Expect(stored).To(HaveLen(20))
			Expect(stored[0].ID).To(Equal("e0"))
			Expect(string(restored.log.Contents())).To(ContainSubstring("restored the data file from a snapshot"))
		}, SpecTimeout(4*time.Minute))
})
