package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// syncBuffer collects the manager's output for the failure report.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeLoopbackAddress returns a 127.0.0.1 address with a port nobody uses.
func freeLoopbackAddress() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// startManager runs the manager binary with the suite's kubeconfig. Its log
// is printed when the spec fails.
func startManager(probeAddr string) (*exec.Cmd, <-chan error) {
	var log syncBuffer
	cmd := exec.Command(managerBinary,
		"--ingest-auth=none", "--ingest-bind-address="+freeLoopbackAddress(),
		"--health-probe-bind-address="+probeAddr, "--metrics-bind-address=0")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
	cmd.Stdout, cmd.Stderr = &log, &log
	Expect(cmd.Start()).To(Succeed())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	DeferCleanup(func() {
		if CurrentSpecReport().Failed() {
			AddReportEntry("manager log", log.String())
		}
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return cmd, exited
}

func readyCondition(conditions []metav1.Condition) string {
	if c := apimeta.FindStatusCondition(conditions, "Ready"); c != nil {
		return string(c.Status) + "/" + c.Reason
	}
	return ""
}

var _ = Describe("the manager binary", func() {
	It("reconciles Streams and Projections, reports ready, and exits 0 on SIGTERM", func(ctx SpecContext) {
		probeAddr := freeLoopbackAddress()
		cmd, exited := startManager(probeAddr)

		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
		Expect(k8sClient.Create(ctx, ns)).To(Succeed())
		stream := &esv1.Stream{
			ObjectMeta: metav1.ObjectMeta{Name: "items-events", Namespace: ns.Name},
			Spec:       esv1.StreamSpec{DefaultEventName: "ItemCreated"},
		}
		Expect(k8sClient.Create(ctx, stream)).To(Succeed())
		projection := &esv1.Projection{
			ObjectMeta: metav1.ObjectMeta{Name: "items", Namespace: ns.Name},
			Spec: esv1.ProjectionSpec{
				Streams:   []string{"items-events"},
				ReadModel: esv1.ReadModel{Type: esv1.ReadModelAppend, Key: "items"},
			},
		}
		Expect(k8sClient.Create(ctx, projection)).To(Succeed())

		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(stream), stream)).To(Succeed())
			g.Expect(readyCondition(stream.Status.Conditions)).To(Equal("True/Active"))
			g.Expect(stream.Status.IngestPath).To(Equal(fmt.Sprintf("/v1/namespaces/%s/streams/items-events/events", ns.Name)))
			g.Expect(stream.Status.Subscribers).To(BeEquivalentTo(1))
		}).WithTimeout(60 * time.Second).Should(Succeed())
		// Counters that are 0 are written too, so printer columns show 0.
		raw := &unstructured.Unstructured{}
		raw.SetGroupVersionKind(esv1.GroupVersion.WithKind("Stream"))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(stream), raw)).To(Succeed())
		_, found, err := unstructured.NestedInt64(raw.Object, "status", "lastSequence")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(BeTrue(), "status.lastSequence is stored even while it is 0")

		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(projection), projection)).To(Succeed())
			g.Expect(readyCondition(projection.Status.Conditions)).To(Equal("True/Running"))
			g.Expect(projection.Status.QueryPath).To(Equal(fmt.Sprintf("/v1/namespaces/%s/projections/items", ns.Name)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Eventually(func() (int, error) {
			resp, err := http.Get("http://" + probeAddr + "/readyz")
			if err != nil {
				return 0, err
			}
			_ = resp.Body.Close()
			return resp.StatusCode, nil
		}).WithTimeout(30 * time.Second).Should(Equal(http.StatusOK))

		Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
		Eventually(exited).WithTimeout(30 * time.Second).Should(Receive(&err))
		Expect(err).NotTo(HaveOccurred(), "the manager should drain and exit 0 on SIGTERM")
	}, SpecTimeout(3*time.Minute))

	It("refuses --ingest-auth=none on a non-loopback address with a clear message and status 2", func(ctx context.Context) {
		out, err := exec.CommandContext(ctx, managerBinary, "--ingest-auth=none", "--ingest-bind-address=:8080").CombinedOutput()
		var exitErr *exec.ExitError
		Expect(err).To(BeAssignableToTypeOf(exitErr))
		Expect(err.(*exec.ExitError).ExitCode()).To(Equal(2))
		Expect(string(out)).To(ContainSubstring("loopback"))
	})
})
