package engine_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The engine must stay a plain Go library: anything from Kubernetes belongs in
// the controllers. This walks the real dependency graph (go list -deps), so an
// indirect import through a third package is caught too.
func TestEngineImportsNothingFromKubernetes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"k8s.io", "sigs.k8s.io"} // module path prefixes
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		for _, prefix := range forbidden {
			if strings.HasPrefix(pkg, prefix+"/") {
				bad = append(bad, pkg)
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("internal/engine depends on Kubernetes packages, want none: %v", bad)
	}
}
