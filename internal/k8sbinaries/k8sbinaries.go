// Package k8sbinaries finds the kube-apiserver, etcd and kubectl that
// envtest, the e2e tests and `make run` use. Their Kubernetes version is
// written in one place, the k8s.io/kubernetes require of hack/k8s/go.mod
// (the module hack/k8s/binaries.sh builds them from), and that script puts
// them in bin/k8s/v<version>.
package k8sbinaries

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/modfile"
)

// GoMod is the file that pins the version, relative to the repository root.
const GoMod = "hack/k8s/go.mod"

// Version is the Kubernetes version hack/k8s/go.mod under repoRoot pins,
// such as "v1.37.2".
func Version(repoRoot string) (string, error) {
	path := filepath.Join(repoRoot, GoMod)
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	f, err := modfile.ParseLax(path, data, nil)
	if err != nil {
		return "", err
	}
	v, ok := requiredVersion(f, "k8s.io/kubernetes")
	if !ok {
		return "", fmt.Errorf("%s requires no k8s.io/kubernetes", path)
	}
	return v, nil
}

// Dir is where hack/k8s/binaries.sh puts the binaries it downloads or
// builds: bin/k8s/<Version> under repoRoot.
func Dir(repoRoot string) (string, error) {
	v, err := Version(repoRoot)
	if err != nil {
		return "", err
	}
	return filepath.Join(repoRoot, "bin", "k8s", v), nil
}

// AssetsDir is where the tests find the binaries: $KUBEBUILDER_ASSETS when
// set (`make test` sets it to what hack/k8s/binaries.sh chose), else Dir.
func AssetsDir(repoRoot string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	return Dir(repoRoot)
}

// requiredVersion is module's version among the require directives of f.
func requiredVersion(f *modfile.File, module string) (string, bool) {
	for _, r := range f.Require {
		if r.Mod.Path == module {
			return r.Mod.Version, true
		}
	}
	return "", false
}
