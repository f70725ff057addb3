package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/k8sbinaries"
)

// TestKubernetesGuardEnforcesTheSampleRolesOfARealAPIServer runs the API
// behind a KubernetesGuard against a kube-apiserver with RBAC: the tokens are
// real ServiceAccount tokens and the roles are the ClusterRoles the project
// ships in config/rbac. One API server serves every subtest, since starting
// one costs seconds.
func TestKubernetesGuardEnforcesTheSampleRolesOfARealAPIServer(t *testing.T) {
	c := startGuardCluster(t)
	nsA, nsB := c.namespace(t), c.namespace(t)
	writerRole := c.applyClusterRole(t, "../../config/api-roles/eventsourcing_writer_role.yaml")
	readerRole := c.applyClusterRole(t, "../../config/api-roles/eventsourcing_reader_role.yaml")

	// Every binding exists and is in force before the API sees a request:
	// the guard remembers a denial for 10 s and a refused token for 30 s.
	writer := c.boundServiceAccount(t, nsA, "writer", writerRole,
		authorizationv1.ResourceAttributes{Verb: "create", Resource: "streams", Subresource: "events"})
	reader := c.boundServiceAccount(t, nsA, "reader", readerRole,
		authorizationv1.ResourceAttributes{Verb: "get", Resource: "projections", Subresource: "state"})

	srv := serveGuardedEngine(t, c, nsA)
	eventsA := srv.URL + "/v1/namespaces/" + nsA + "/streams/items/events"
	eventsB := srv.URL + "/v1/namespaces/" + nsB + "/streams/items/events"
	projectionA := srv.URL + "/v1/namespaces/" + nsA + "/projections/items"

	t.Run("ServiceAccountAllowedToWriteInOneNamespaceIsRefusedInAnother", func(t *testing.T) {
		got := guardRequest(t, http.MethodPost, eventsA, writer.token, `{"sku":"a-1"}`)
		if got.status != http.StatusAccepted {
			t.Fatalf("writer posting in its namespace %s: got status %d (%s), want 202", nsA, got.status, got.body)
		}
		var ack struct {
			Accepted bool   `json:"accepted"`
			ID       string `json:"id"`
			Stream   string `json:"stream"`
		}
		if err := json.Unmarshal([]byte(got.body), &ack); err != nil || !ack.Accepted || ack.ID == "" || ack.Stream != "items" {
			t.Errorf("202 body: got %s (decode error %v), want accepted true, an id and stream items", got.body, err)
		}
		// The event records its poster as the Kubernetes API named them.
		enginetest.Eventually(t, "the writer's event to be stored", func() (bool, string) {
			msgs, err := c.engine.ReadStream(t.Context(), nsA+"/items", 0, 100)
			for _, m := range msgs {
				if m.ID == ack.ID {
					if u := m.Headers[httpapi.HeaderUser]; u != writer.user {
						t.Fatalf("event %s: %s = %q, want the writer %q", m.ID, httpapi.HeaderUser, u, writer.user)
					}
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d events, error %v", len(msgs), err)
		})

		// Namespace B has no stream "items" either: the refusal comes
		// first, so it says nothing about what B holds.
		got = guardRequest(t, http.MethodPost, eventsB, writer.token, `{"sku":"b-1"}`)
		got.wantForbidden(t, "writer posting in "+nsB, writer.user)
	})

	t.Run("WriterCannotReadTheStreamOrQueryTheProjection", func(t *testing.T) {
		for _, url := range []string{eventsA, projectionA} {
			got := guardRequest(t, http.MethodGet, url, writer.token, "")
			got.wantForbidden(t, "writer reading "+url, writer.user)
		}
	})

	t.Run("ReaderCanReadTheStreamAndQueryTheProjectionButCannotPost", func(t *testing.T) {
		id := "reader-sees-this"
		if _, err := c.engine.Ingest(t.Context(), nsA+"/items", []core.Event{{ID: id, Payload: []byte(`{"sku":"r-1"}`)}}); err != nil {
			t.Fatalf("ingest an event for the reader: %v", err)
		}
		// The event reaches the stream once the outbox processor moved it.
		enginetest.Eventually(t, "the reader to see event "+id, func() (bool, string) {
			got := guardRequest(t, http.MethodGet, eventsA, reader.token, "")
			if got.status != http.StatusOK {
				t.Fatalf("reader reading the stream: got status %d (%s), want 200", got.status, got.body)
			}
			return strings.Contains(got.body, `"id":"`+id+`"`), got.body
		})

		got := guardRequest(t, http.MethodGet, projectionA, reader.token, "")
		var model map[string]any
		if got.status != http.StatusOK || json.Unmarshal([]byte(got.body), &model) != nil {
			t.Errorf("reader querying the projection: got status %d (%s), want 200 with a JSON object", got.status, got.body)
		}

		got = guardRequest(t, http.MethodPost, eventsA, reader.token, `{"sku":"r-2"}`)
		got.wantForbidden(t, "reader posting in "+nsA, reader.user)
	})

	t.Run("WriterCanRedriveTheProjectionButReaderCannot", func(t *testing.T) {
		got := guardRequest(t, http.MethodPost, projectionA+"/redrive", writer.token, "")
		if got.status != http.StatusAccepted || !strings.Contains(got.body, `"redriven":0`) {
			t.Fatalf("writer redriving: got status %d (%s), want 202 with redriven 0", got.status, got.body)
		}
		got = guardRequest(t, http.MethodPost, projectionA+"/redrive", reader.token, "")
		got.wantForbidden(t, "reader redriving", reader.user)
	})

	t.Run("WriterCanRedriveTheReactorButReaderCannot", func(t *testing.T) {
		reactorA := srv.URL + "/v1/namespaces/" + nsA + "/reactors/items/redrive"
		got := guardRequest(t, http.MethodPost, reactorA, writer.token, "")
		if got.status != http.StatusAccepted || !strings.Contains(got.body, `"redriven":0`) {
			t.Fatalf("writer redriving: got status %d (%s), want 202 with redriven 0", got.status, got.body)
		}
		got = guardRequest(t, http.MethodPost, reactorA, reader.token, "")
		got.wantForbidden(t, "reader redriving", reader.user)
	})

	t.Run("ReaderCanListTheNamespacesObjectsButWriterCannot", func(t *testing.T) {
		for _, kind := range []string{"streams", "projections", "reactors"} {
			listA := srv.URL + "/v1/namespaces/" + nsA + "/" + kind
			got := guardRequest(t, http.MethodGet, listA, reader.token, "")
			if got.status != http.StatusOK || !strings.Contains(got.body, `"name":"items"`) {
				t.Errorf("reader listing %s: got status %d (%s), want 200 naming items", kind, got.status, got.body)
			}
			got = guardRequest(t, http.MethodGet, listA, writer.token, "")
			got.wantForbidden(t, "writer listing "+kind, writer.user)
			got = guardRequest(t, http.MethodGet, srv.URL+"/v1/namespaces/"+nsB+"/"+kind, reader.token, "")
			got.wantForbidden(t, "reader listing "+kind+" in "+nsB, reader.user)
		}
	})

	t.Run("RequestWithoutATokenIsUnauthenticated", func(t *testing.T) {
		got := guardRequest(t, http.MethodPost, eventsA, "", `{"sku":"x"}`)
		got.wantUnauthenticated(t, "no Authorization header")
	})

	t.Run("TokenTheAPIServerDoesNotKnowIsUnauthenticated", func(t *testing.T) {
		got := guardRequest(t, http.MethodPost, eventsA, "not-a-token-the-api-server-issued", `{"sku":"x"}`)
		got.wantUnauthenticated(t, "a garbage token")
	})

	// The metrics endpoint's paths, guarded by ProtectPaths as the manager
	// does, with the shipped ClusterRole that allows GET /backup.
	backupRole := c.applyClusterRole(t, "../../config/rbac/backup_role.yaml")
	backup := c.clusterBoundServiceAccount(t, nsA, "backup", backupRole,
		authorizationv1.NonResourceAttributes{Verb: "get", Path: "/backup"})
	paths := httptest.NewServer(c.guard.ProtectPaths(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "served")
	})))
	t.Cleanup(paths.Close)

	t.Run("PathGuardServesAPathOnlyWithTheVerbItsRoleAllows", func(t *testing.T) {
		got := guardRequest(t, http.MethodGet, paths.URL+"/backup", backup.token, "")
		if got.status != http.StatusOK || got.body != "served" {
			t.Fatalf("GET /backup with the backup role: got status %d (%s), want 200 from the guarded handler", got.status, got.body)
		}
		got = guardRequest(t, http.MethodGet, paths.URL+"/metrics", backup.token, "")
		got.wantForbidden(t, "GET /metrics with the backup role only", backup.user)
		got = guardRequest(t, http.MethodPost, paths.URL+"/backup", backup.token, "")
		got.wantForbidden(t, "POST /backup with a role that allows get", backup.user)
	})

	t.Run("PathGuardAnswersAMissingOrUnknownTokenWith401", func(t *testing.T) {
		guardRequest(t, http.MethodGet, paths.URL+"/backup", "", "").wantUnauthenticated(t, "GET /backup without a token")
		guardRequest(t, http.MethodGet, paths.URL+"/metrics", "not-a-token-the-api-server-issued", "").
			wantUnauthenticated(t, "GET /metrics with a garbage token")
	})
}

// guardCluster is a kube-apiserver and etcd with an admin client.
type guardCluster struct {
	cs     kubernetes.Interface
	guard  *httpapi.KubernetesGuard
	engine *core.Engine
}

// startGuardCluster starts envtest's API server with RBAC enforced and a
// service-account issuer, so that TokenRequest, TokenReview and
// SubjectAccessReview all work, and a guard whose reviews use the admin
// credentials, as the manager uses its own.
func startGuardCluster(t *testing.T) *guardCluster {
	t.Helper()
	env := &envtest.Environment{BinaryAssetsDirectory: guardAssetsDir(t)}
	// RBAC is envtest's default; set it anyway, since every 403 here
	// depends on it (AlwaysAllow would let every request through).
	env.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop kube-apiserver and etcd: %v", err)
		}
	})
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("build the admin client: %v", err)
	}
	guard, err := httpapi.NewKubernetesGuard(cfg, logr.Discard())
	if err != nil {
		t.Fatalf("NewKubernetesGuard: %v", err)
	}
	return &guardCluster{cs: cs, guard: guard}
}

// guardAssetsDir is KUBEBUILDER_ASSETS, else the binaries `make
// k8s-binaries` provides; without either the test is skipped.
func guardAssetsDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	dir, err := k8sbinaries.Dir("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		t.Skipf("no kube-apiserver: KUBEBUILDER_ASSETS is empty and %s has none; run make k8s-binaries", dir)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// namespace creates a namespace of its own (envtest never finishes deleting
// one, so none is reused).
func (c *guardCluster) namespace(t *testing.T) string {
	t.Helper()
	ns, err := c.cs.CoreV1().Namespaces().Create(t.Context(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "guard-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create a namespace: %v", err)
	}
	return ns.Name
}

// applyClusterRole creates the ClusterRole the manifest at path declares,
// as shipped, and returns its name.
func (c *guardCluster) applyClusterRole(t *testing.T, path string) string {
	t.Helper()
	manifest, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(manifest, &role); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if role.Kind != "ClusterRole" || role.Name == "" {
		t.Fatalf("%s: got kind %q named %q, want a named ClusterRole", path, role.Kind, role.Name)
	}
	if _, err := c.cs.RbacV1().ClusterRoles().Create(t.Context(), &role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ClusterRole %s from %s: %v", role.Name, path, err)
	}
	return role.Name
}

// identity is a ServiceAccount's bearer token and the user name the API
// server knows it by.
type identity struct {
	token string
	user  string
}

// boundServiceAccount creates ServiceAccount name in ns, binds it there to
// clusterRole and issues it a token. It returns once the API server both
// accepts the token and allows probe in ns, so that the guard's first
// review of it cannot race the RBAC and token caches of the API server.
func (c *guardCluster) boundServiceAccount(t *testing.T, ns, name, clusterRole string, probe authorizationv1.ResourceAttributes) identity {
	t.Helper()
	ctx := t.Context()
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-" + clusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
	}
	if _, err := c.cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bind %s/%s to %s: %v", ns, name, clusterRole, err)
	}
	id := c.serviceAccountToken(t, ns, name)

	probe.Namespace, probe.Group, probe.Name = ns, "eventsourcing.dev", "items"
	c.waitInForce(t, id, authorizationv1.SubjectAccessReviewSpec{ResourceAttributes: &probe})
	return id
}

// clusterBoundServiceAccount creates ServiceAccount name in ns, binds it
// cluster-wide to clusterRole (rules for non-resource URLs take effect only
// so) and issues it a token. It returns once the API server allows probe.
func (c *guardCluster) clusterBoundServiceAccount(
	t *testing.T, ns, name, clusterRole string, probe authorizationv1.NonResourceAttributes,
) identity {
	t.Helper()
	ctx := t.Context()
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name + "-" + clusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
	}
	if _, err := c.cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bind %s/%s to %s cluster-wide: %v", ns, name, clusterRole, err)
	}
	id := c.serviceAccountToken(t, ns, name)
	c.waitInForce(t, id, authorizationv1.SubjectAccessReviewSpec{NonResourceAttributes: &probe})
	return id
}

// serviceAccountToken creates ServiceAccount name in ns and issues it a
// token.
func (c *guardCluster) serviceAccountToken(t *testing.T, ns, name string) identity {
	t.Helper()
	ctx := t.Context()
	sa, err := c.cs.CoreV1().ServiceAccounts(ns).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create ServiceAccount %s/%s: %v", ns, name, err)
	}
	tr, err := c.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("request a token for %s/%s: %v", ns, name, err)
	}
	id := identity{token: tr.Status.Token, user: "system:serviceaccount:" + ns + ":" + name}
	return id
}

// waitInForce polls the API server until it authenticates id's token as
// id.user and allows it probe (its resource or non-resource attributes).
func (c *guardCluster) waitInForce(t *testing.T, id identity, probe authorizationv1.SubjectAccessReviewSpec) {
	t.Helper()
	ctx := t.Context()
	what := fmt.Sprintf("the API server to authenticate %s and allow it to %s", id.user, probeString(probe))
	enginetest.Eventually(t, what, func() (bool, string) {
		review, err := c.cs.AuthenticationV1().TokenReviews().Create(ctx,
			&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: id.token}}, metav1.CreateOptions{})
		authenticated := err == nil && review.Status.Authenticated
		if authenticated && review.Status.User.Username != id.user {
			t.Fatalf("TokenReview: got user %q, want %q", review.Status.User.Username, id.user)
		}
		allowed := false
		if authenticated {
			spec := probe
			spec.User, spec.Groups, spec.UID = review.Status.User.Username, review.Status.User.Groups, review.Status.User.UID
			sar, err := c.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx,
				&authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
			allowed = err == nil && sar.Status.Allowed
		}
		return allowed, fmt.Sprintf("authenticated %t, allowed %t", authenticated, allowed)
	})
}

// serveGuardedEngine runs a real engine with stream and projection "items"
// in ns and serves the API, guarded by c.guard, until the test ends.
func serveGuardedEngine(t *testing.T, c *guardCluster, ns string) *httptest.Server {
	t.Helper()
	e, err := core.New(core.Config{PollingInterval: 10 * time.Millisecond, AllowPrivateSinks: true})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	c.engine = e
	name := ns + "/items"
	if err := e.ApplyStream(core.StreamSpec{Name: name, DefaultEventName: "ItemCreated"}); err != nil {
		t.Fatalf("ApplyStream %s: %v", name, err)
	}
	if err := e.ApplyProjection(t.Context(), core.ProjectionSpec{Spec: projection.Spec{
		Name: name, Streams: []string{name}, Type: projection.Append, Key: "items",
	}}); err != nil {
		t.Fatalf("ApplyProjection %s: %v", name, err)
	}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(sink.Close)
	if err := e.ApplyReactor(t.Context(), core.ReactorSpec{Name: name, Streams: []string{name}, SinkURL: sink.URL}); err != nil {
		t.Fatalf("ApplyReactor %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("engine Close: %v", err)
		}
	})
	enginebench.RunEngine(t, e)

	h, err := httpapi.NewHandler(httpapi.Config{Engine: e, Guard: c.guard})
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// guardResponse is what the API answered.
type guardResponse struct {
	status int
	header http.Header
	body   string
}

// guardRequest sends a JSON body (or none) with token as bearer token (or
// no Authorization header when token is empty).
func guardRequest(t *testing.T, method, url, token, body string) guardResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("build %s %s: %v", method, url, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the answer to %s %s: %v", method, url, err)
	}
	return guardResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// problem decodes r as problem+json of the given status and kind.
func (r guardResponse) problem(t *testing.T, what string, status int, kind string) httpapi.Problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: got status %d (%s), want %d", what, r.status, r.body, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: got Content-Type %q, want application/problem+json", what, ct)
	}
	var p httpapi.Problem
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatalf("%s: decode the problem %s: %v", what, r.body, err)
	}
	if p.Status != status || !strings.HasSuffix(p.Type, "#"+kind) {
		t.Errorf("%s: got problem status %d type %q, want %d and a type ending #%s", what, p.Status, p.Type, status, kind)
	}
	return p
}

// wantForbidden checks a 403 problem whose detail names user, so that the
// caller learns which identity lacks the permission.
func (r guardResponse) wantForbidden(t *testing.T, what, user string) {
	t.Helper()
	p := r.problem(t, what, http.StatusForbidden, "forbidden")
	if !strings.Contains(p.Detail, user) {
		t.Errorf("%s: got detail %q, want it to name %s", what, p.Detail, user)
	}
}

// wantUnauthenticated checks a 401 problem that tells the client to send a
// bearer token.
func (r guardResponse) wantUnauthenticated(t *testing.T, what string) {
	t.Helper()
	r.problem(t, what, http.StatusUnauthorized, "unauthenticated")
	if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("%s: got WWW-Authenticate %q, want a Bearer challenge", what, got)
	}
}

// probeString names what probe asks for, for a failure message.
func probeString(probe authorizationv1.SubjectAccessReviewSpec) string {
	if a := probe.ResourceAttributes; a != nil {
		return a.Verb + " " + a.Resource + "/" + a.Subresource
	}
	if a := probe.NonResourceAttributes; a != nil {
		return a.Verb + " " + a.Path
	}
	return "nothing"
}
