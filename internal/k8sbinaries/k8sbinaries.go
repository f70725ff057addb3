// Package k8sbinaries finds the kube-apiserver, etcd and kubectl that
// envtest, the e2e tests and `make run` use. Their Kubernetes version is
// written in one place, the k8s.io/kubernetes require of hack/k8s/go.mod
// (the module hack/k8s/binaries.sh builds them from), and that script puts
// them in bin/k8s/v<version>.
package k8sbinaries

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	v, ok := requiredVersion(data, "k8s.io/kubernetes")
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

// requiredVersion finds module's version among the require directives of a
// go.mod file, in both the one-line and the block form.
func requiredVersion(gomod []byte, module string) (string, bool) {
	inBlock := false
	s := bufio.NewScanner(bytes.NewReader(gomod))
	for s.Scan() {
		line, _, _ := strings.Cut(s.Text(), "//")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case inBlock && fields[0] == ")":
			inBlock = false
			continue
		case !inBlock && fields[0] == "require":
			if len(fields) == 2 && fields[1] == "(" {
				inBlock = true
				continue
			}
			fields = fields[1:]
		case !inBlock:
			continue
		}
		if len(fields) == 2 && fields[0] == module {
			return fields[1], true
		}
	}
	return "", false
}
