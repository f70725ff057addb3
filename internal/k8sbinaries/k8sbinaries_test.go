package k8sbinaries

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"golang.org/x/mod/modfile"
)

func TestRequiredVersionReadsBothFormsOfRequireAndNothingElse(t *testing.T) {
	const gomod = `module example.com/m

go 1.26.0

require example.com/single v1.2.3 // indirect

require (
	// k8s.io/kubernetes v9.9.9 in a comment is no require
	k8s.io/kubernetes v1.37.2
	example.com/other v0.1.0
)

replace k8s.io/api => k8s.io/api v0.37.2

exclude k8s.io/kubernetes v1.0.0
`
	f, err := modfile.ParseLax("go.mod", []byte(gomod), nil)
	if err != nil {
		t.Fatal(err)
	}
	for module, want := range map[string]string{
		"k8s.io/kubernetes":  "v1.37.2",
		"example.com/single": "v1.2.3",
		"example.com/other":  "v0.1.0",
	} {
		if got, ok := requiredVersion(f, module); !ok || got != want {
			t.Errorf("requiredVersion(%s) = %q, %v; want %q", module, got, ok, want)
		}
	}
	if got, ok := requiredVersion(f, "k8s.io/api"); ok {
		t.Errorf("requiredVersion(k8s.io/api) = %q from a replace; want none", got)
	}
}

func TestVersionOfTheRepositoryIsAReleaseOfKubernetes(t *testing.T) {
	v, err := Version("../..")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^v1\.[0-9]+\.[0-9]+$`).MatchString(v) {
		t.Errorf("Version = %q, want a Kubernetes release such as v1.37.2", v)
	}
	dir, err := Dir("../..")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("../..", "bin", "k8s", v); dir != want {
		t.Errorf("Dir = %q, want %q", dir, want)
	}
}

func TestAssetsDirPrefersKubebuilderAssets(t *testing.T) {
	t.Setenv("KUBEBUILDER_ASSETS", "/opt/envtest")
	if dir, err := AssetsDir("../.."); err != nil || dir != "/opt/envtest" {
		t.Errorf("AssetsDir = %q, %v; want /opt/envtest", dir, err)
	}
	t.Setenv("KUBEBUILDER_ASSETS", "")
	want, err := Dir("../..")
	if err != nil {
		t.Fatal(err)
	}
	if dir, err := AssetsDir("../.."); err != nil || dir != want {
		t.Errorf("AssetsDir without KUBEBUILDER_ASSETS = %q, %v; want %q", dir, err, want)
	}
}

func TestVersionSaysWhichFileLacksTheRequire(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "hack", "k8s"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, GoMod), []byte("module m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Version(root); err == nil {
		t.Error("Version of a go.mod without k8s.io/kubernetes: no error")
	}
}
