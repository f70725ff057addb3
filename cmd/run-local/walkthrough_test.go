package main

import (
	"os"
	"strings"
	"testing"
)

// The README's Quick start is what `make run` prints, so the two cannot
// drift apart: the e2e suite runs the printed walkthrough.
func TestReadmeQuickStartIsTheWalkthroughMakeRunPrints(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	o := options{stateDir: "bin/local", k8sDir: "bin/k8s/v1.37.2", ingestAddr: "127.0.0.1:8080"}
	text := walkthrough(o, true)
	// The commands, from the first export to the last kubectl line.
	start := strings.Index(text, "export KUBECONFIG")
	end := strings.LastIndex(text, "\nCtrl-C")
	commands := text[start:end]
	if !strings.Contains(string(readme), commands) {
		t.Fatalf("README.md does not hold the walkthrough make run prints; put this in its Quick start:\n%s", commands)
	}
}

func TestWalkthroughPointsKubectlAtTheLocalControlPlaneOnlyWhenItStartedOne(t *testing.T) {
	o := options{stateDir: "/tmp/state", k8sDir: "bin/k8s/v1.37.2", ingestAddr: "127.0.0.1:9999"}
	local := walkthrough(o, true)
	for _, want := range []string{
		`export KUBECONFIG="/tmp/state/kubeconfig"`, `export PATH="$PWD/bin/k8s/v1.37.2":"$PATH"`, "http://127.0.0.1:9999/v1/",
	} {
		if !strings.Contains(local, want) {
			t.Errorf("walkthrough with a local control plane lacks %q:\n%s", want, local)
		}
	}
	if remote := walkthrough(o, false); strings.Contains(remote, "export") {
		t.Errorf("walkthrough on the user's own cluster changes their environment:\n%s", remote)
	}
}
