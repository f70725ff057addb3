package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// deployNamespace is the namespace config/default deploys the manager into.
const deployNamespace = "eventsourcing-operator-system"

// podSecurityViolation starts the warning that Pod Security admission gives
// for a workload whose pod template breaks the namespace's level.
const podSecurityViolation = "would violate PodSecurity"

// renderKustomization builds dir (such as config/default) with kubectl's
// kustomize and returns its objects.
func renderKustomization(ctx context.Context, dir string) []*unstructured.Unstructured {
	out, err := kubectl(ctx, "kustomize", dir)
	Expect(err).NotTo(HaveOccurred())
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		Expect(err).NotTo(HaveOccurred(), "decode the output of kubectl kustomize %s", dir)
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		// Unstructured's own decoder keeps integers int64 (a plain map would
		// make them float64).
		obj := &unstructured.Unstructured{}
		Expect(obj.UnmarshalJSON(raw)).To(Succeed())
		objs = append(objs, obj)
	}
	return objs
}

// onlyObjectOfKind returns the one object of kind in objs.
func onlyObjectOfKind(objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	Expect(found).To(HaveLen(1), "want exactly one %s in the rendered manifests", kind)
	return found[0]
}

// writeObjectFile writes obj as JSON to a new file and returns its path.
func writeObjectFile(obj *unstructured.Unstructured) string {
	data, err := obj.MarshalJSON()
	Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(GinkgoT().TempDir(), strings.ToLower(obj.GetKind())+".json")
	Expect(os.WriteFile(path, data, 0o600)).To(Succeed())
	return path
}

// applyServerDryRun applies dir (whose objects are objs) with
// --dry-run=server and expects the API server to accept every object, and
// its Pod Security admission to find nothing to warn about.
func applyServerDryRun(ctx context.Context, dir string, objs []*unstructured.Unstructured) {
	out, err := kubectl(ctx, "apply", "--dry-run=server", "-k", dir)
	Expect(err).NotTo(HaveOccurred())
	Expect(out).NotTo(ContainSubstring(podSecurityViolation))
	for _, o := range objs {
		line := regexp.QuoteMeta(strings.ToLower(o.GroupVersionKind().GroupKind().String()) + "/" + o.GetName())
		Expect(out).To(MatchRegexp(`(?m)^`+line+` (created|configured|unchanged) \(server dry run\)$`),
			"want a dry-run line for %s %s in:\n%s", o.GetKind(), o.GetName(), out)
	}
}

// managerArgs are the arguments of the manager container of deploy.
func managerArgs(deploy *unstructured.Unstructured) []string {
	containers, _, err := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	Expect(err).NotTo(HaveOccurred())
	Expect(containers).NotTo(BeEmpty())
	manager, ok := containers[0].(map[string]any)
	Expect(ok).To(BeTrue())
	Expect(manager["name"]).To(Equal("manager"))
	args, _, err := unstructured.NestedStringSlice(manager, "args")
	Expect(err).NotTo(HaveOccurred())
	return args
}

// unrestrictedDeployment is a Deployment whose pod breaks the restricted
// Pod Security Standard (no securityContext at all).
const unrestrictedDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: unrestricted
spec:
  selector:
    matchLabels: {app: unrestricted}
  template:
    metadata:
      labels: {app: unrestricted}
    spec:
      containers:
      - name: main
        image: example.invalid/unrestricted:1
`

var _ = Describe("the kustomize manifests under a server-side dry run", func() {
	It("config/default passes a server-side dry run, its Deployment meeting the restricted Pod Security Standard",
		func(ctx SpecContext) {
			objs := renderKustomization(ctx, "config/default")

			// Namespaced objects are dry-run only in a namespace that exists:
			// create the manifests' own Namespace for real.
			ns := onlyObjectOfKind(objs, "Namespace")
			Expect(ns.GetName()).To(Equal(deployNamespace))
			// Pod Security admission enforces on pods, which nothing creates
			// here, and checks a Deployment's pod template only in warn (and
			// audit) mode: the namespace must warn at restricted too, so that
			// the dry run below reports a template that falls short.
			Expect(ns.GetLabels()).To(And(
				HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"),
				HaveKeyWithValue("pod-security.kubernetes.io/warn", "restricted"),
			), "the manager's namespace should enforce, and warn at, the restricted Pod Security Standard")
			_, err := kubectl(ctx, "apply", "-f", writeObjectFile(ns))
			Expect(err).NotTo(HaveOccurred())

			By("checking that the API server warns about a Deployment that is not restricted")
			bad := filepath.Join(GinkgoT().TempDir(), "unrestricted.yaml")
			Expect(os.WriteFile(bad, []byte(unrestrictedDeployment), 0o600)).To(Succeed())
			out, err := kubectl(ctx, "apply", "--dry-run=server", "-n", deployNamespace, "-f", bad)
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(ContainSubstring(podSecurityViolation),
				"without this warning for a bare Deployment, the check of ours below proves nothing")

			By("applying config/default with --dry-run=server")
			applyServerDryRun(ctx, "config/default", objs)

			deploy := onlyObjectOfKind(objs, "Deployment")
			replicas, _, err := unstructured.NestedInt64(deploy.Object, "spec", "replicas")
			Expect(err).NotTo(HaveOccurred())
			Expect(replicas).To(BeEquivalentTo(1), "memory storage: a second replica's accepted events would never be dispatched")
			grace, _, err := unstructured.NestedInt64(deploy.Object, "spec", "template", "spec", "terminationGracePeriodSeconds")
			Expect(err).NotTo(HaveOccurred())
			Expect(grace).To(BeNumerically(">", 25), "the HTTP API drains for up to 25 s after SIGTERM")
		}, NodeTimeout(2*time.Minute))

	It("the Deployment of config/default runs the manager with flags it accepts", func(ctx SpecContext) {
		args := managerArgs(onlyObjectOfKind(renderKustomization(ctx, "config/default"), "Deployment"))
		Expect(args).To(ContainElements("--leader-elect", "--health-probe-bind-address=:8081",
			"--metrics-bind-address=:8443", "--ingest-bind-address=:8080"))

		// --help after the Deployment's flags: the manager parses them all
		// (an unknown flag or a bad value exits 2) and then exits 0 without
		// looking for a cluster.
		out, err := exec.CommandContext(ctx, managerBinary, append(args, "--help")...).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "manager %s --help:\n%s", strings.Join(args, " "), out)
	}, NodeTimeout(time.Minute))

	It("config/nats passes a server-side dry run: three managers on NATS, one per node, a PodDisruptionBudget, no volume",
		func(ctx SpecContext) {
			objs := renderKustomization(ctx, "config/nats")
			ns := onlyObjectOfKind(objs, "Namespace")
			Expect(ns.GetName()).To(Equal(deployNamespace))
			_, err := kubectl(ctx, "apply", "-f", writeObjectFile(ns))
			Expect(err).NotTo(HaveOccurred())

			By("applying config/nats with --dry-run=server")
			applyServerDryRun(ctx, "config/nats", objs)
			for _, o := range objs {
				Expect(o.GetKind()).NotTo(Equal("PersistentVolumeClaim"), "NATS keeps the data: no volume for the managers")
			}

			deploy := onlyObjectOfKind(objs, "Deployment")
			replicas, _, err := unstructured.NestedInt64(deploy.Object, "spec", "replicas")
			Expect(err).NotTo(HaveOccurred())
			Expect(replicas).To(BeEquivalentTo(3))
			strategy, _, err := unstructured.NestedString(deploy.Object, "spec", "strategy", "type")
			Expect(err).NotTo(HaveOccurred())
			Expect(strategy).To(Equal("RollingUpdate"))
			maxSurge, _, err := unstructured.NestedFieldNoCopy(deploy.Object, "spec", "strategy", "rollingUpdate", "maxSurge")
			Expect(err).NotTo(HaveOccurred())
			Expect(maxSurge).To(BeEquivalentTo(0), "with one manager per node, a surge pod would wait for a fourth node")
			volumes, found, err := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "volumes")
			Expect(err).NotTo(HaveOccurred())
			Expect(found && len(volumes) > 0).To(BeFalse(), "no volumes, got %v", volumes)

			podLabels, _, err := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "labels")
			Expect(err).NotTo(HaveOccurred())
			Expect(podLabels).NotTo(BeEmpty())
			terms, _, err := unstructured.NestedSlice(deploy.Object,
				"spec", "template", "spec", "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution")
			Expect(err).NotTo(HaveOccurred())
			Expect(terms).To(HaveLen(1))
			term, ok := terms[0].(map[string]any)
			Expect(ok).To(BeTrue())
			Expect(term["topologyKey"]).To(Equal("kubernetes.io/hostname"))
			selected, _, err := unstructured.NestedStringMap(term, "labelSelector", "matchLabels")
			Expect(err).NotTo(HaveOccurred())
			Expect(selected).To(Equal(podLabels), "the anti-affinity selects the manager's own pods")

			pdb := onlyObjectOfKind(objs, "PodDisruptionBudget")
			minAvailable, _, err := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable")
			Expect(err).NotTo(HaveOccurred())
			Expect(minAvailable).To(BeEquivalentTo(2))
			selected, _, err = unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels")
			Expect(err).NotTo(HaveOccurred())
			Expect(selected).To(Equal(podLabels), "the PodDisruptionBudget counts the manager's pods")

			args := managerArgs(deploy)
			Expect(args).To(ContainElements("--storage=nats", "--nats-url=nats://nats.nats.svc:4222", "--nats-replicas=3",
				"--leader-elect", "--metrics-bind-address=:8443", "--ingest-bind-address=:8080", "--health-probe-bind-address=:8081"))
			Expect(args).NotTo(ContainElement(HavePrefix("--data-dir")))
			out, err := exec.CommandContext(ctx, managerBinary, append(args, "--help")...).CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "manager %s --help:\n%s", strings.Join(args, " "), out)
		}, NodeTimeout(2*time.Minute))

	It("config/api-roles pass a server-side dry run under the names users bind", func(ctx SpecContext) {
		out, err := kubectl(ctx, "apply", "--dry-run=server", "-k", "config/api-roles")
		Expect(err).NotTo(HaveOccurred())
		for _, want := range []string{"clusterrole.rbac.authorization.k8s.io/eventsourcing-writer",
			"clusterrole.rbac.authorization.k8s.io/eventsourcing-reader"} {
			Expect(out).To(ContainSubstring(want+" created (server dry run)"), "kubectl apply --dry-run=server output:\n%s", out)
		}
	}, NodeTimeout(time.Minute))

	It("config/samples pass a server-side dry run in a namespace", func(ctx SpecContext) {
		ns := fmt.Sprintf("samples-dry-run-%d", time.Now().UnixNano())
		_, err := kubectl(ctx, "create", "namespace", ns)
		Expect(err).NotTo(HaveOccurred())

		out, err := kubectl(ctx, "apply", "--dry-run=server", "-n", ns, "-k", "config/samples")
		Expect(err).NotTo(HaveOccurred())
		for _, want := range []string{
			"stream.eventsourcing.dev/items-events",
			"pipeline.eventsourcing.dev/default",
			"projection.eventsourcing.dev/items",
			"projection.eventsourcing.dev/latest-item-by-foo",
			"projection.eventsourcing.dev/item-count",
			"stream.eventsourcing.dev/orders",
			"projection.eventsourcing.dev/order-totals",
		} {
			Expect(out).To(ContainSubstring(want+" created (server dry run)"), "kubectl apply --dry-run=server output:\n%s", out)
		}
		Expect(strings.Count(out, "(server dry run)")).To(Equal(7),
			"want the seven sample objects and nothing else (payloads/ is not a resource):\n%s", out)

		// The samples carry no namespace of their own: -n decides.
		for _, o := range renderKustomization(ctx, "config/samples") {
			Expect(o.GetNamespace()).To(BeEmpty(), "%s %s should not set a namespace", o.GetKind(), o.GetName())
		}
	}, NodeTimeout(time.Minute))

	It("config/samples/reactor passes a server-side dry run, and its Reactor is the README's", func(ctx SpecContext) {
		ns := fmt.Sprintf("reactor-dry-run-%d", time.Now().UnixNano())
		_, err := kubectl(ctx, "create", "namespace", ns)
		Expect(err).NotTo(HaveOccurred())

		out, err := kubectl(ctx, "apply", "--dry-run=server", "-n", ns, "-k", "config/samples/reactor")
		Expect(err).NotTo(HaveOccurred())
		for _, want := range []string{"stream.eventsourcing.dev/order-shipments", "reactor.eventsourcing.dev/ship-orders"} {
			Expect(out).To(ContainSubstring(want+" created (server dry run)"), "kubectl apply --dry-run=server output:\n%s", out)
		}
		Expect(strings.Count(out, "(server dry run)")).To(Equal(2), "want the two objects and nothing else:\n%s", out)

		readme, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
		Expect(err).NotTo(HaveOccurred())
		_, section, found := strings.Cut(string(readme), "\n### React to events\n")
		Expect(found).To(BeTrue(), "README.md has no heading \"### React to events\"")
		_, block, found := strings.Cut(section, "```yaml\n")
		Expect(found).To(BeTrue(), "no yaml block under \"### React to events\"")
		block, _, _ = strings.Cut(block, "```")
		inREADME := &unstructured.Unstructured{}
		Expect(utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(block), 4096).Decode(&inREADME.Object)).To(Succeed())
		sample := onlyObjectOfKind(renderKustomization(ctx, "config/samples/reactor"), "Reactor")
		Expect(sample.GetName()).To(Equal(inREADME.GetName()))
		Expect(sample.Object["spec"]).To(Equal(inREADME.Object["spec"]), "the README shows the sample's spec")
		for _, o := range renderKustomization(ctx, "config/samples/reactor") {
			Expect(o.GetNamespace()).To(BeEmpty(), "%s %s should not set a namespace", o.GetKind(), o.GetName())
		}
	}, NodeTimeout(time.Minute))
})
