package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	"github.com/onsi/gomega/gbytes"
)

// make run is cmd/run-local with the Makefile's flags. This spec runs it as
// a new user meets it (no kubeconfig anywhere), pastes the walkthrough it
// prints into bash, and stops it with Ctrl-C.
var _ = Describe("make run without a cluster", func() {
	It("starts a local control plane, prints a walkthrough that works as written, and stops everything on Ctrl-C",
		func(ctx SpecContext) {
			dir := GinkgoT().TempDir()
			runLocal := filepath.Join(dir, "run-local")
			build := exec.Command("go", "build", "-o", runLocal, "./cmd/run-local")
			build.Dir = repoRoot()
			out, err := build.CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "go build ./cmd/run-local:\n%s", out)

			ingestAddr := freeLoopbackAddress()
			log := gbytes.NewBuffer()
			stateDir := filepath.Join(dir, "state")
			managerLog := filepath.Join(stateDir, "manager.log")
			cmd := exec.Command(runLocal, "--manager="+managerBinary, "--k8s-dir="+assetsDir,
				"--state-dir="+stateDir, "--ingest-bind-address="+ingestAddr,
				"--health-probe-bind-address="+freeLoopbackAddress())
			cmd.Dir = repoRoot()
			// No cluster configured: no KUBECONFIG and a HOME without ~/.kube.
			cmd.Env = append(withoutEnv("KUBECONFIG", "HOME"), "HOME="+dir)
			cmd.Stdout, cmd.Stderr = log, log
			Expect(cmd.Start()).To(Succeed())
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			DeferCleanup(func() {
				if CurrentSpecReport().Failed() {
					AddReportEntry("make run output", string(log.Contents()))
					managerOutput, _ := os.ReadFile(managerLog)
					AddReportEntry("manager log", string(managerOutput))
				}
				if cmd.ProcessState == nil {
					_ = cmd.Process.Signal(syscall.SIGTERM)
					if err := <-exited; err != nil {
						GinkgoWriter.Println("make run exited:", err)
					}
				}
			})

			Eventually(log).WithTimeout(2 * time.Minute).Should(gbytes.Say("starting a local control plane"))
			Eventually(log).WithTimeout(2 * time.Minute).Should(gbytes.Say("The manager is ready"))
			script := walkthroughCommands(string(log.Contents()))
			Expect(script).To(ContainSubstring("kubectl apply -k config/samples"))

			shell := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
			shell.Dir = repoRoot()
			shell.Env = withoutEnv("KUBECONFIG")
			out, err = shell.CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "the walkthrough failed:\n%s\n%s", script, out)
			Expect(strings.Count(string(out), `"accepted":true`)).To(Equal(3), "one 202 per format:\n%s", out)

			// The read model follows the stream asynchronously: it may lag
			// the walkthrough's GET by a moment, never for good.
			query := "http://" + ingestAddr + "/v1/namespaces/default/projections/items"
			Eventually(getJSON(ctx, query)).WithTimeout(30 * time.Second).
				Should(MatchJSON(`{"items":[{"foo":"a","n":1},{"foo":"b","n":2},{"foo":"c","n":3}]}`))

			By("keeping the walkthrough the last thing on the terminal: the manager logs to its file, for a person")
			Expect(string(log.Contents())).To(HaveSuffix("Ctrl-C here stops the manager and the local control plane (its objects go with it).\n"))
			managerOutput, err := os.ReadFile(managerLog)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(managerOutput)).To(ContainSubstring("starting manager"))
			Expect(string(managerOutput)).NotTo(ContainSubstring(`"msg":`), "zap's console encoder, not JSON")
			Expect(string(log.Contents())).To(ContainSubstring("tail -f " + managerLog))

			Expect(cmd.Process.Signal(os.Interrupt)).To(Succeed())
			Eventually(exited).WithTimeout(time.Minute).Should(Receive(BeNil()), "make run exits 0 on Ctrl-C")
			Expect(string(log.Contents())).To(ContainSubstring("stopping the local control plane"))
			_, err = http.Get(query)
			Expect(err).To(HaveOccurred(), "the manager is gone after Ctrl-C")
		}, SpecTimeout(5*time.Minute))
})

// walkthroughCommands cuts the shell lines out of run-local's output: from
// the first export to the kubectl get that ends the walkthrough.
func walkthroughCommands(output string) string {
	start := strings.Index(output, "export KUBECONFIG=")
	Expect(start).To(BeNumerically(">=", 0), "no walkthrough in:\n%s", output)
	rest := output[start:]
	end := strings.Index(rest, "kubectl get streams,projections")
	Expect(end).To(BeNumerically(">=", 0), "the walkthrough does not end with kubectl get:\n%s", rest)
	lineEnd := strings.IndexByte(rest[end:], '\n')
	return rest[:end+lineEnd+1]
}

// withoutEnv is this process's environment without the given variables.
func withoutEnv(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, n := range names {
			if name == n {
				keep = false
			}
		}
		if keep {
			env = append(env, kv)
		}
	}
	return env
}
