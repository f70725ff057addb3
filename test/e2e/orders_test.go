package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
)

// readmeBlock returns the first ```sh block after the README heading.
func readmeBlock(heading string) string {
	GinkgoHelper()
	readme, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	Expect(err).NotTo(HaveOccurred())
	_, section, found := strings.Cut(string(readme), "\n"+heading+"\n")
	Expect(found).To(BeTrue(), "README.md has no heading %q", heading)
	_, block, found := strings.Cut(section, "```sh\n")
	Expect(found).To(BeTrue(), "no sh block under %q", heading)
	block, _, found = strings.Cut(block, "```")
	Expect(found).To(BeTrue(), "the sh block under %q does not end", heading)
	return block
}

var _ = Describe("the orders example", func() {
	It("places, fills and pays an order with If-Match, refuses a stale writer, and folds it with Reduce", func(ctx SpecContext) {
		m := runManager()
		ns := newNamespace(ctx)
		_, err := kubectl(ctx, "apply", "-n", ns, "-k", samplesDir)
		Expect(err).NotTo(HaveOccurred())

		// The README's lines as a user pastes them, pointed at this
		// manager and namespace.
		script := readmeBlock("## An application: orders")
		script = strings.ReplaceAll(script, "http://127.0.0.1:8080", m.api)
		script = strings.ReplaceAll(script, "/namespaces/default/", "/namespaces/"+ns+"/")
		script = strings.ReplaceAll(script, "kubectl wait", "kubectl -n "+ns+" wait")
		shell := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
		shell.Dir = repoRoot()
		shell.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath, "PATH="+assetsDir+":"+os.Getenv("PATH"))
		out, err := shell.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "%s", out)
		output := string(out)
		for _, want := range []string{`"key":"order-42","version":1`, `"version":2`, `"version":3`, `"version":4`} {
			Expect(output).To(ContainSubstring(want), "the script's output")
		}
		Expect(output).To(ContainSubstring("#version-conflict"), "the stale writer's answer")
		Expect(output).To(ContainSubstring("is at version 3"), "the 412 names the current version")

		events := fmt.Sprintf("%s/v1/namespaces/%s/streams/orders/keys/order-42/events", m.api, ns)
		read, err := readStream(ctx, events, 0)
		Expect(err).NotTo(HaveOccurred())
		Expect(read).To(HaveLen(4))
		for i, name := range []string{"OrderPlaced", "LineAdded", "LineAdded", "OrderPaid"} {
			Expect(read[i].Name).To(Equal(name), "event %d", i)
			Expect(read[i].Version).To(BeEquivalentTo(i+1), "event %d", i)
		}
		total := fmt.Sprintf("%s/v1/namespaces/%s/projections/order-totals/keys/order-42", m.api, ns)
		eventuallyWithin(getJSON(ctx, total), 30*time.Second).Should(MatchJSON(`{"lines":2,"status":"paid","total":35}`))
	}, SpecTimeout(2*time.Minute))
})
