package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	"github.com/onsi/gomega/gbytes"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// handedOut holds the addresses freeLoopbackAddress gave: the kernel may
// give a closed port again at once, and two of one manager's addresses
// (probes, metrics) must differ, as they are bound only later.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freeLoopbackAddress returns a loopback address nothing listens on, and
// that it has not returned before.
func freeLoopbackAddress() string {
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		addr := l.Addr().String()
		_ = l.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

// managerProcess is the manager binary running as its own process.
type managerProcess struct {
	cmd *exec.Cmd
	// exited receives cmd.Wait's result once the process ends.
	exited <-chan error
	// api is the base URL of the HTTP API (--ingest-bind-address).
	api string
	// probeAddr serves /healthz and /readyz.
	probeAddr string
	log       *gbytes.Buffer // the manager's output, for the failure report
}

// runManager runs the manager binary with the suite's kubeconfig, no ingest
// auth, its HTTP API and probes on free loopback ports, and extra flags.
// When the spec fails, the manager's log is added to its report (and so
// printed with the failure); the process is killed at the end of the spec if
// it still runs.
// waitReady waits until the manager's /readyz answers 200.
func (m *managerProcess) waitReady() {
	GinkgoHelper()
	Eventually(func() (int, error) {
		resp, err := http.Get("http://" + m.probeAddr + "/readyz")
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}).WithTimeout(30*time.Second).Should(Equal(http.StatusOK), "the manager is ready")
}

func runManager(extraArgs ...string) *managerProcess {
	return runManagerWith(kubeconfigPath, extraArgs...)
}

// runManagerWith is runManager with the credentials of kubeconfig.
func runManagerWith(kubeconfig string, extraArgs ...string) *managerProcess {
	m := &managerProcess{
		api:       "http://" + freeLoopbackAddress(),
		probeAddr: freeLoopbackAddress(),
		log:       gbytes.NewBuffer(),
	}
	m.cmd = exec.Command(managerBinary, append([]string{
		"--ingest-auth=none", "--ingest-bind-address=" + strings.TrimPrefix(m.api, "http://"),
		"--health-probe-bind-address=" + m.probeAddr, "--metrics-bind-address=0"}, extraArgs...)...)
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	Expect(m.cmd.Start()).To(Succeed())
	exited, done := make(chan error, 1), make(chan struct{})
	go func() {
		exited <- m.cmd.Wait()
		close(done)
	}()
	m.exited = exited
	DeferCleanup(func() {
		select {
		case <-done:
		default:
			_ = m.cmd.Process.Kill()
			<-done
		}
		if CurrentSpecReport().Failed() {
			AddReportEntry("manager log", string(m.log.Contents()))
		}
	})
	return m
}

// newNamespace creates a namespace of its own for one spec (namespaces never
// finish deleting in envtest, so they are not deleted).
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func readyCondition(conditions []metav1.Condition) string {
	if c := apimeta.FindStatusCondition(conditions, "Ready"); c != nil {
		return string(c.Status) + "/" + c.Reason
	}
	return ""
}

// apiClient is a plain net/http client, as a user's program would have.
var apiClient = &http.Client{Timeout: 30 * time.Second}

// apiResponse is one answer of the HTTP API, read in full.
type apiResponse struct {
	status      int
	contentType string
	header      http.Header
	body        []byte
}

func (r apiResponse) String() string {
	return fmt.Sprintf("%d %s %s", r.status, r.contentType, r.body)
}

// callAPI sends one request to the manager's HTTP API and reads the whole answer.
func callAPI(ctx context.Context, method, url, contentType string, body []byte, header http.Header) (apiResponse, error) {
	return callAPIWith(ctx, apiClient, method, url, contentType, body, header)
}

// callAPIWith is callAPI with a client of the caller's.
func callAPIWith(
	ctx context.Context, c *http.Client, method, url, contentType string, body []byte, header http.Header,
) (apiResponse, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return apiResponse{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return apiResponse{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResponse{}, fmt.Errorf("read the answer to %s %s: %w", method, url, err)
	}
	return apiResponse{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), header: resp.Header, body: b}, nil
}

// postEvent posts one event and expects 202 with the contract's body.
func postEvent(ctx context.Context, url, contentType string, body []byte) {
	GinkgoHelper()
	resp, err := callAPI(ctx, http.MethodPost, url, contentType, body, nil)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.status).To(Equal(http.StatusAccepted), "POST %s (%s): got %s, want 202", url, contentType, resp)
	var accepted struct {
		Accepted bool   `json:"accepted"`
		ID       string `json:"id"`
	}
	Expect(json.Unmarshal(resp.body, &accepted)).To(Succeed(), "202 body %s", resp.body)
	Expect(accepted.Accepted).To(BeTrue(), "202 body %s", resp.body)
	Expect(accepted.ID).NotTo(BeEmpty(), "202 body %s", resp.body)
}

// getJSON is a function for Eventually: the body of a 200 answer to GET url.
func getJSON(ctx context.Context, url string) func() (string, error) {
	return func() (string, error) {
		resp, err := callAPI(ctx, http.MethodGet, url, "", nil, nil)
		if err != nil {
			return "", err
		}
		if resp.status != http.StatusOK {
			return "", fmt.Errorf("GET %s: got %s, want 200", url, resp)
		}
		return string(resp.body), nil
	}
}

// streamEvent is one event of a stream read.
type streamEvent struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Sequence    uint64            `json:"sequence"`
	Key         string            `json:"key"`
	Version     uint64            `json:"version"`
	Time        time.Time         `json:"time"`
	Headers     map[string]string `json:"headers"`
	CausationID string            `json:"causationId"`
	ContentType string            `json:"contentType"`
	Payload     json.RawMessage   `json:"payload"`
}

// readStream reads a stream's events after sequence after, at most 1000.
func readStream(ctx context.Context, url string, after uint64) ([]streamEvent, error) {
	body, err := getJSON(ctx, fmt.Sprintf("%s?after=%d&limit=1000", url, after))()
	if err != nil {
		return nil, err
	}
	var page struct {
		Events []streamEvent `json:"events"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		return nil, fmt.Errorf("stream page %s: %w", body, err)
	}
	return page.Events, nil
}

// samplePayload reads one of config/samples/payloads.
func samplePayload(name string) []byte {
	b, err := os.ReadFile(filepath.Join(repoRoot(), "config", "samples", "payloads", name))
	Expect(err).NotTo(HaveOccurred())
	return b
}

// kubectlTable parses kubectl get's table output: one table per resource
// type, separated by blank lines; each row maps a column's header to its
// value. kubectl pads columns with at least three spaces, so a header with
// one space inside ("LAST SEQUENCE") is one column.
func kubectlTable(out string) []map[string]string {
	var rows []map[string]string
	for _, block := range strings.Split(strings.TrimSpace(out), "\n\n") {
		lines := strings.Split(block, "\n")
		header := lines[0]
		var starts []int
		for i := 0; i < len(header); i++ {
			if header[i] != ' ' && (i == 0 || strings.HasSuffix(header[:i], "  ")) {
				starts = append(starts, i)
			}
		}
		names := make([]string, len(starts))
		for c, start := range starts {
			end := len(header)
			if c+1 < len(starts) {
				end = starts[c+1]
			}
			names[c] = strings.TrimSpace(header[start:end])
		}
		for _, line := range lines[1:] {
			row := map[string]string{}
			for c, start := range starts {
				end := len(line)
				if c+1 < len(starts) && starts[c+1] < end {
					end = starts[c+1]
				}
				if start < end {
					row[names[c]] = strings.TrimSpace(line[start:end])
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// tableRow is the row of rows whose NAME is name or ends in "/"+name.
func tableRow(rows []map[string]string, name string) map[string]string {
	for _, r := range rows {
		if r["NAME"] == name || strings.HasSuffix(r["NAME"], "/"+name) {
			return r
		}
	}
	return nil
}
