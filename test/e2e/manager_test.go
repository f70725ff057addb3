package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// createItemsStream creates Stream items-events (JSON) and an Append
// Projection items over it in ns, and waits until the Stream is Ready.
func createItemsStream(ctx context.Context, ns string) (*esv1.Stream, *esv1.Projection) {
	GinkgoHelper()
	stream, projection := applyItemsStream(ctx, ns)
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(stream), stream)).To(Succeed())
		g.Expect(readyCondition(stream.Status.Conditions)).To(Equal("True/Active"))
	}).WithTimeout(60 * time.Second).Should(Succeed())
	return stream, projection
}

// applyItemsStream creates Stream items-events (JSON, ItemCreated) and the
// Append Projection items over it in ns, without waiting for a manager.
func applyItemsStream(ctx context.Context, ns string) (*esv1.Stream, *esv1.Projection) {
	GinkgoHelper()
	stream := &esv1.Stream{
		ObjectMeta: metav1.ObjectMeta{Name: "items-events", Namespace: ns},
		Spec:       esv1.StreamSpec{DefaultEventName: "ItemCreated"},
	}
	Expect(k8sClient.Create(ctx, stream)).To(Succeed())
	projection := &esv1.Projection{
		ObjectMeta: metav1.ObjectMeta{Name: "items", Namespace: ns},
		Spec: esv1.ProjectionSpec{
			Streams:   []string{"items-events"},
			ReadModel: esv1.ReadModel{Type: esv1.ReadModelAppend, Key: "items"},
		},
	}
	Expect(k8sClient.Create(ctx, projection)).To(Succeed())
	return stream, projection
}

var _ = Describe("the manager binary", func() {
	It("reconciles Streams and Projections and reports ready", func(ctx SpecContext) {
		m := runManager()
		ns := newNamespace(ctx)
		stream, projection := createItemsStream(ctx, ns)

		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(stream), stream)).To(Succeed())
			g.Expect(stream.Status.IngestPath).To(Equal(fmt.Sprintf("/v1/namespaces/%s/streams/items-events/events", ns)))
			g.Expect(stream.Status.Subscribers).To(BeEquivalentTo(1))
		}).WithTimeout(30 * time.Second).Should(Succeed())
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
			g.Expect(projection.Status.QueryPath).To(Equal(fmt.Sprintf("/v1/namespaces/%s/projections/items", ns)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		m.waitReady()
	}, SpecTimeout(2*time.Minute))

	It("SIGTERM finishes in-flight requests and exits 0", func(ctx SpecContext) {
		m := runManager()
		ns := newNamespace(ctx)
		createItemsStream(ctx, ns)
		url := fmt.Sprintf("%s/v1/namespaces/%s/streams/items-events/events", m.api, ns)

		// Every request must end in one of three ways: a complete 202, a
		// 503 problem (the engine is stopping or full), or a refused
		// connection once the listener is closed. Anything else (a reset
		// or EOF mid-response, another status) is a request the shutdown
		// broke. Keep-alive connections, as a real client holds them; the
		// Idempotency-Key makes the transport retry a request it wrote on
		// a connection the server had just closed as idle.
		const posters = 32
		c := &http.Client{
			Timeout:   40 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: posters, MaxConnsPerHost: posters},
		}
		defer c.CloseIdleConnections()
		var (
			accepted, unavailable, answeredAfterSignal atomic.Int64
			signalled                                  atomic.Bool
			mu                                         sync.Mutex
			broken                                     []string
			wg                                         sync.WaitGroup
		)
		stop := make(chan struct{})
		var stopOnce sync.Once
		stopAll := func() { stopOnce.Do(func() { close(stop) }) }
		DeferCleanup(func() { stopAll(); wg.Wait() })
		post := func(g, i int) (done bool) {
			key := fmt.Sprintf("shutdown-%d-%d", g, i)
			resp, err := callAPIWith(context.WithoutCancel(ctx), c, http.MethodPost, url, "application/json",
				fmt.Appendf(nil, `{"poster":%d,"i":%d}`, g, i), http.Header{"Idempotency-Key": {key}})
			var accepted202 struct {
				Accepted bool   `json:"accepted"`
				ID       string `json:"id"`
			}
			switch {
			case errors.Is(err, syscall.ECONNREFUSED):
				return true
			case err != nil:
				mu.Lock()
				broken = append(broken, fmt.Sprintf("%s: %v", key, err))
				mu.Unlock()
			case resp.status == http.StatusAccepted && json.Unmarshal(resp.body, &accepted202) == nil &&
				accepted202.Accepted && accepted202.ID == key:
				accepted.Add(1)
				if signalled.Load() {
					answeredAfterSignal.Add(1)
				}
			case resp.status == http.StatusServiceUnavailable && resp.contentType == "application/problem+json" &&
				resp.header.Get("Retry-After") != "":
				unavailable.Add(1)
				if signalled.Load() {
					answeredAfterSignal.Add(1)
				}
			default:
				mu.Lock()
				broken = append(broken, fmt.Sprintf("%s: %s", key, resp))
				mu.Unlock()
			}
			return false
		}
		for g := range posters {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if post(g, i) {
						return
					}
				}
			})
		}

		// One request is in flight for sure: its handler is reading the body
		// (the server has answered 100 Continue) when SIGTERM arrives, and
		// the body's end follows only once the HTTP API has begun to drain.
		inFlight := startSlowPost(ctx, url, "in-flight")

		Eventually(accepted.Load).WithTimeout(30*time.Second).Should(BeNumerically(">=", 500),
			"the posters should get going before the signal")
		signalled.Store(true)
		Expect(m.cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
		Eventually(func() string { return string(m.log.Contents()) }).WithTimeout(30 * time.Second).Should(ContainSubstring("HTTP API stopping"))
		Expect(m.exited).NotTo(Receive(), "the manager should wait for the request in flight")
		Expect(inFlight.finish(`{"in":"flight"}`)).To(Equal("in-flight"), "the request in flight should be answered 202")
		var err error
		Eventually(m.exited).WithTimeout(30*time.Second).Should(Receive(&err),
			"the manager should exit within the HTTP API's 25s drain and the engine's flush")
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			Fail(fmt.Sprintf("the manager exited with status %d on SIGTERM, want 0", exitErr.ExitCode()))
		}
		Expect(err).NotTo(HaveOccurred())

		// The listener is gone: every poster ends on a refused connection.
		allDone := make(chan struct{})
		go func() { wg.Wait(); close(allDone) }()
		Eventually(allDone).WithTimeout(30 * time.Second).Should(BeClosed())
		mu.Lock()
		defer mu.Unlock()
		counts := fmt.Sprintf("%d accepted, %d answered 503, %d of them after SIGTERM",
			accepted.Load(), unavailable.Load(), answeredAfterSignal.Load())
		GinkgoWriter.Println(counts)
		Expect(broken).To(BeEmpty(), "requests the shutdown broke (%s)", counts)

		// An orderly shutdown: the HTTP API drains before the engine (a
		// leader election runnable) is stopped, the manager says it is
		// done, and nothing fails on the way but work the signal cancelled.
		log := string(m.log.Contents())
		apiStopping := strings.Index(log, "HTTP API stopping: finishing requests in flight")
		engineStopping := strings.Index(log, "Stopping and waiting for leader election runnables")
		Expect(apiStopping).To(BeNumerically(">=", 0), "the HTTP API should log that it drains")
		Expect(engineStopping).To(BeNumerically(">", apiStopping), "the HTTP API should stop before the engine")
		Expect(log).To(ContainSubstring("Wait completed, proceeding to shutdown the manager"))
		Expect(log).NotTo(ContainSubstring("Reconciler returned both a result with either RequeueAfter or Requeue set and a non-nil error"))
		var failures []string
		for line := range strings.Lines(log) {
			isError := strings.Contains(line, `"level":"error"`) || strings.Contains(line, "level=ERROR")
			if isError && !strings.Contains(line, "context canceled") || strings.Contains(line, "panic") {
				failures = append(failures, line)
			}
		}
		Expect(failures).To(BeEmpty(), "errors logged during the shutdown")
	}, SpecTimeout(2*time.Minute))

	It("refuses --ingest-auth=none on a non-loopback address with a clear message and status 2", func(ctx context.Context) {
		out, err := exec.CommandContext(ctx, managerBinary, "--ingest-auth=none", "--ingest-bind-address=:8080").CombinedOutput()
		var exitErr *exec.ExitError
		Expect(err).To(BeAssignableToTypeOf(exitErr))
		Expect(err.(*exec.ExitError).ExitCode()).To(Equal(2))
		Expect(string(out)).To(ContainSubstring("loopback"))
	})
})

// slowPost is a POST whose handler is running, reading a body that is not
// all there yet.
type slowPost struct {
	body *io.PipeWriter
	done chan slowPostResult
}

type slowPostResult struct {
	resp apiResponse
	err  error
}

// startSlowPost posts to url with Expect: 100-continue and returns once the
// server has answered 100 Continue, which it does when the handler starts
// reading the body: from then on the request is in flight.
func startSlowPost(ctx context.Context, url, id string) *slowPost {
	GinkgoHelper()
	body, w := io.Pipe()
	got100 := make(chan struct{})
	traced := httptrace.WithClientTrace(context.WithoutCancel(ctx), &httptrace.ClientTrace{
		Got100Continue: func() { close(got100) },
	})
	req, err := http.NewRequestWithContext(traced, http.MethodPost, url, body)
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	req.Header.Set("Idempotency-Key", id)
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	p := &slowPost{body: w, done: make(chan slowPostResult, 1)}
	go func() {
		resp, err := c.Do(req)
		if err != nil {
			p.done <- slowPostResult{err: err}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		p.done <- slowPostResult{resp: apiResponse{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"),
			header: resp.Header, body: b}, err: err}
	}()
	DeferCleanup(func() { _ = w.CloseWithError(errors.New("spec over")) })
	Eventually(got100).WithTimeout(30*time.Second).Should(BeClosed(), "the server should answer 100 Continue")
	return p
}

// finish sends the rest of the body and returns the id of the 202 answer.
func (p *slowPost) finish(body string) (string, error) {
	if _, err := io.WriteString(p.body, body); err != nil {
		return "", err
	}
	if err := p.body.Close(); err != nil {
		return "", err
	}
	var r slowPostResult
	Eventually(p.done).WithTimeout(30 * time.Second).Should(Receive(&r))
	if r.err != nil {
		return "", r.err
	}
	var accepted struct {
		Accepted bool   `json:"accepted"`
		ID       string `json:"id"`
	}
	if r.resp.status != http.StatusAccepted || json.Unmarshal(r.resp.body, &accepted) != nil || !accepted.Accepted {
		return "", fmt.Errorf("got %s, want 202 with accepted true", r.resp)
	}
	return accepted.ID, nil
}
