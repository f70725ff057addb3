// Package e2e tests the product as a user meets it: the manager binary, run
// as its own process with a kubeconfig, against a real kube-apiserver and
// etcd (the ones hack/k8s/binaries.sh provides; KUBEBUILDER_ASSETS points at them).
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/k8sbinaries"
)

var (
	testEnv        *envtest.Environment
	k8sClient      client.Client
	kubeconfigPath string
	managerBinary  string
	// assetsDir holds kube-apiserver, etcd and kubectl (hack/k8s/binaries.sh provides them).
	assetsDir string
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "e2e suite")
}

// repoRoot is the repository's top directory, found from this file.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var _ = BeforeSuite(func() {
	assets, err := k8sbinaries.AssetsDir(repoRoot())
	Expect(err).NotTo(HaveOccurred())
	assetsDir = assets
	_, err = os.Stat(filepath.Join(assets, "kube-apiserver"))
	Expect(err).NotTo(HaveOccurred(), "e2e needs kube-apiserver in %s: run make k8s-binaries", assets)

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	scheme := k8sruntime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(esv1.AddToScheme(scheme)).To(Succeed())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	// The manager gets a kubeconfig of its own, as a user would give it.
	user, err := testEnv.AddUser(envtest.User{Name: "e2e-manager", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	kubeconfig, err := user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	dir := GinkgoT().TempDir()
	kubeconfigPath = filepath.Join(dir, "kubeconfig")
	Expect(os.WriteFile(kubeconfigPath, kubeconfig, 0o600)).To(Succeed())

	managerBinary = filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", managerBinary, "./cmd/manager")
	build.Dir = repoRoot()
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "go build ./cmd/manager:\n%s", out)
})

// kubectl runs the kubectl hack/k8s built against the suite's API server,
// from the repository's root (so paths like config/samples work), and
// returns its combined output.
func kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(assetsDir, "kubectl"), append([]string{"--kubeconfig", kubeconfigPath}, args...)...)
	cmd.Dir = repoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
