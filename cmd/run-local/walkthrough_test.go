package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/k8sbinaries"
)

// defaultK8sDir is the directory `make run` takes the control plane from on
// a machine without KUBEBUILDER_ASSETS, relative to the repository root.
func defaultK8sDir(t *testing.T) string {
	t.Helper()
	v, err := k8sbinaries.Version("../..")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join("bin", "k8s", v)
}

// The README's Quick start is what `make run` prints, so the two cannot
// drift apart: the e2e suite runs the printed walkthrough. Its PATH line
// names the Kubernetes version hack/k8s/go.mod pins.
func TestReadmeQuickStartIsTheWalkthroughMakeRunPrints(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	o := options{stateDir: "bin/local", k8sDir: defaultK8sDir(t), ingestAddr: "127.0.0.1:8080", managerLog: "bin/local/manager.log"}
	text := walkthrough(o, true)
	// The commands: from the first export to the blank line after them.
	start := strings.Index(text, "export KUBECONFIG")
	end := start + strings.Index(text[start:], "\n\n") + 1
	commands := text[start:end]
	if !strings.Contains(string(readme), commands) {
		t.Fatalf("README.md does not hold the walkthrough make run prints; put this in its Quick start:\n%s", commands)
	}
}

func TestWalkthroughPointsKubectlAtTheLocalControlPlaneOnlyWhenItStartedOne(t *testing.T) {
	o := options{stateDir: "/tmp/state", k8sDir: "bin/k8s/v1.2.3", ingestAddr: "127.0.0.1:9999", managerLog: "/tmp/state/manager.log"}
	local := walkthrough(o, true)
	for _, want := range []string{
		`export KUBECONFIG="/tmp/state/kubeconfig"`, `export PATH="$PWD/bin/k8s/v1.2.3":"$PATH"`, "http://127.0.0.1:9999/v1/",
	} {
		if !strings.Contains(local, want) {
			t.Errorf("walkthrough with a local control plane lacks %q:\n%s", want, local)
		}
	}
	if remote := walkthrough(o, false); strings.Contains(remote, "export") {
		t.Errorf("walkthrough on the user's own cluster changes their environment:\n%s", remote)
	}
}

// The manager logs to a file so that the walkthrough stays on screen; the
// walkthrough says where that file is.
func TestWalkthroughSaysWhereTheManagerLogs(t *testing.T) {
	o := options{stateDir: "bin/local", k8sDir: "bin/k8s/v1.2.3", ingestAddr: "127.0.0.1:8080", managerLog: "bin/local/manager.log"}
	for _, local := range []bool{true, false} {
		if text := walkthrough(o, local); !strings.Contains(text, "tail -f bin/local/manager.log") {
			t.Errorf("walkthrough (local control plane: %v) does not say where the manager's log is:\n%s", local, text)
		}
	}
}

func TestWalkthroughPrintsTheConsolesURL(t *testing.T) {
	o := options{stateDir: "bin/local", k8sDir: "bin/k8s/v1.2.3", ingestAddr: "127.0.0.1:9999", managerLog: "bin/local/manager.log"}
	for _, local := range []bool{true, false} {
		if text := walkthrough(o, local); !strings.Contains(text, "http://127.0.0.1:9999/console/?namespace=default") {
			t.Errorf("walkthrough (local control plane: %v) does not give the web console's URL:\n%s", local, text)
		}
	}
}

func TestLogTailIsTheLastLinesOfTheManagersLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "manager.log")
	if err := os.WriteFile(path, []byte("one\ntwo\nthree\nfour\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := logTail(path, 2); got != "three\nfour\n" {
		t.Errorf("logTail(2) = %q, want the last two lines", got)
	}
	if got := logTail(path, 10); got != "one\ntwo\nthree\nfour\n" {
		t.Errorf("logTail(10) of 4 lines = %q, want all of them", got)
	}
	if err := os.WriteFile(path, []byte("one\ncut off"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := logTail(path, 1); got != "cut off\n" {
		t.Errorf("logTail of a log without a final newline = %q, want the line ended", got)
	}
}
