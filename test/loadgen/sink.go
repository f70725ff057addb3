package loadgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// A Sink is the user's HTTP service a Reactor delivers to, as the
// benchmarks need it: every request to /{mode}/{run} is counted under run,
// with the time of the first and the last, and answered by mode: "ok"
// answers 200 at once with no body, "accept" 202 (as ingest does), "reply" answers 200 with one
// CloudEvent in binary mode (a reply to append), "hang" never answers (the
// request waits until the client gives up). GET /stats/{run} gives a
// run's SinkStats.
type Sink struct {
	mu   sync.Mutex
	runs map[string]*SinkStats
}

// SinkStats is what a sink saw of one run.
type SinkStats struct {
	Requests int   `json:"requests"`
	First    int64 `json:"first"` // Unix nanoseconds of the first request
	Last     int64 `json:"last"`  // and of the last answered
}

// Rate is the requests per second from the first to the last.
func (s SinkStats) Rate() float64 {
	if s.Requests < 2 || s.Last <= s.First {
		return 0
	}
	return float64(s.Requests-1) / time.Duration(s.Last-s.First).Seconds()
}

// NewSink returns an empty sink.
func NewSink() *Sink { return &Sink{runs: map[string]*SinkStats{}} }

func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		run, ok := strings.CutPrefix(r.URL.Path, "/stats/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		var st SinkStats
		if p := s.runs[run]; p != nil {
			st = *p
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
		return
	}
	mode, run, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if !ok || run == "" {
		http.NotFound(w, r)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	if mode == "hang" {
		s.note(run)
		<-r.Context().Done()
		return
	}
	if mode == "reply" {
		h := w.Header()
		h.Set("ce-specversion", "1.0")
		h.Set("ce-type", "ShipmentRequested")
		h.Set("ce-source", "/shipping")
		h.Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"carrier":"post"}`))
	}
	s.note(run)
	if mode == "accept" {
		w.WriteHeader(http.StatusAccepted)
	}
}

func (s *Sink) note(run string) {
	now := time.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.runs[run]
	if st == nil {
		st = &SinkStats{First: now}
		s.runs[run] = st
	}
	st.Requests++
	st.Last = now
}

// SinkChild is a Sink serving in a child process.
type SinkChild struct {
	Addr string // host:port
	cmd  *exec.Cmd
	in   io.WriteCloser
}

const sinkEnv, sinkAddrPrefix = "EVENTSOURCING_LOADGEN_SINK", "loadgen-sink: "

// bridgeEnv, set in a child's environment, makes it serve a Bridge to
// "<nats url>|<subject>" rather than a Sink.
const bridgeEnv = "EVENTSOURCING_LOADGEN_BRIDGE"

// StartSinkInChild starts a Sink in a child process: this test binary
// again, running only the test named child, which must call ServeSinkChild.
// The child ends when Kill is called or this process exits.
func StartSinkInChild(child string) (*SinkChild, error) {
	return startChild(child)
}

// StartBridgeInChild starts a Bridge publishing to subject on the NATS
// servers at url in a child process, as StartSinkInChild does a Sink (the
// same child test serves either).
func StartBridgeInChild(child, url, subject string) (*SinkChild, error) {
	return startChild(child, bridgeEnv+"="+url+"|"+subject)
}

func startChild(child string, env ...string) (*SinkChild, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), sinkEnv+"=1"), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &SinkChild{cmd: cmd, in: in}
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if addr, ok := strings.CutPrefix(lines.Text(), sinkAddrPrefix); ok {
			c.Addr = addr
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return c, nil
		}
	}
	c.Kill()
	return nil, fmt.Errorf("the sink process printed no address")
}

// Stats asks the child for a run's figures.
func (c *SinkChild) Stats(run string) (SinkStats, error) {
	var st SinkStats
	resp, err := http.Get("http://" + c.Addr + "/stats/" + run)
	if err != nil {
		return st, err
	}
	defer func() { _ = resp.Body.Close() }()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Pid is the child's process id.
func (c *SinkChild) Pid() int { return c.cmd.Process.Pid }

// Kill ends the child.
func (c *SinkChild) Kill() {
	_ = c.in.Close()
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// ServeSinkChild is the body of the test StartSinkInChild and
// StartBridgeInChild name: it serves a Sink (or a Bridge) on loopback until
// its standard input closes; run any other way, the test is skipped.
func ServeSinkChild(t *testing.T) {
	if os.Getenv(sinkEnv) == "" {
		t.Skip("the sink of the reactor benchmarks, run by loadgen.StartSinkInChild")
	}
	var handler http.Handler = NewSink()
	if to := os.Getenv(bridgeEnv); to != "" {
		url, subject, _ := strings.Cut(to, "|")
		b, err := NewBridge(url, subject)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		handler = b
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	fmt.Printf("%s%s\n", sinkAddrPrefix, l.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
}

// Deliver is the bare Go HTTP client the reactor benchmarks measure a
// Reactor against: workers goroutines POST n events to url with the
// CloudEvents binary-mode headers a delivery carries, the i-th event on
// the key k-(i mod keys), and read each answer whole.
func Deliver(url string, n, workers, keys int, payload []byte) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	jobs := make(chan int, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				if err := deliverOne(client, url, i, keys, payload); err != nil {
					errs <- err
					for range jobs { // let the feeder finish
					}
					return
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	return <-errs
}

func deliverOne(client *http.Client, url string, i, keys int, payload []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	h := req.Header
	id := fmt.Sprintf("bench-%d", i)
	h.Set("Content-Type", "application/json")
	h.Set("ce-specversion", "1.0")
	h.Set("ce-id", id)
	h.Set("ce-type", "OrderPaid")
	h.Set("ce-source", "/namespaces/bench/streams/orders")
	h.Set("ce-partitionkey", fmt.Sprintf("k-%d", i%keys))
	h.Set("ce-time", time.Now().UTC().Format(time.RFC3339Nano))
	h.Set("ce-sequence", fmt.Sprint(i+1))
	h.Set("ce-correlationid", id)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the sink answered %d", resp.StatusCode)
	}
	return nil
}
