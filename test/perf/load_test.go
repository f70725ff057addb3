package perf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadEnv carries a loadSpec to the child process, as JSON.
const loadEnv = "EVENTSOURCING_PERF_LOAD"

// loadSpec is one load run. With Rate 0 the clients post as fast as they
// are answered (closed loop), N events or for Duration; with Rate > 0 they
// post Rate events per second for Duration (open loop). With ReadURL set, a
// reader follows the stream and notes when each event becomes readable.
type loadSpec struct {
	PostURL  string        `json:"postURL"`
	ReadURL  string        `json:"readURL"`
	Clients  int           `json:"clients"`
	N        int           `json:"n"`
	Rate     int           `json:"rate"`
	Duration time.Duration `json:"duration"`
	// After is the stream's last sequence before the run: the reader
	// starts there.
	After uint64 `json:"after"`
}

// loadResult is what a run measured.
type loadResult struct {
	Accepted int           `json:"accepted"`
	Refused  int           `json:"refused"` // 503s, retried after 1 ms
	Elapsed  time.Duration `json:"elapsed"`
	P50, P99 time.Duration // 202 latency
	// Open loop only: from a 202 to the event being readable.
	VisibleP50, VisibleP99, VisibleMax time.Duration
	// Drain is from the last 202 to every accepted event being readable.
	Drain time.Duration `json:"drain"`
	Err   string        `json:"err,omitempty"`
}

// runLoad runs spec in a child process (this test binary again), so that
// the clients do not share the benchmark's scheduler or the manager's.
func runLoad(b *testing.B, spec loadSpec) loadResult {
	b.Helper()
	req, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadGeneratorProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), loadEnv+"="+string(req))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("load generator process: %v: %s%s", err, out, stderr.String())
	}
	_, line, ok := strings.Cut(string(out), "load-result: ")
	if !ok {
		b.Fatalf("load generator printed no result: %s", out)
	}
	line, _, _ = strings.Cut(line, "\n")
	var res loadResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		b.Fatalf("load result %q: %v", line, err)
	}
	if res.Err != "" {
		b.Fatal(res.Err)
	}
	return res
}

// TestLoadGeneratorProcess is the child of runLoad; on its own it does nothing.
func TestLoadGeneratorProcess(t *testing.T) {
	raw := os.Getenv(loadEnv)
	if raw == "" {
		t.Skip("the load generator of the benchmarks, run by runLoad")
	}
	var spec loadSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	res := generate(spec)
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("load-result: %s\n", out)
}

// generate runs spec in this process.
func generate(spec loadSpec) loadResult {
	transport := &http.Transport{MaxIdleConns: spec.Clients + 1, MaxIdleConnsPerHost: spec.Clients + 1}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	total := spec.N
	switch {
	case spec.Rate > 0:
		total = int(int64(spec.Rate) * int64(spec.Duration) / int64(time.Second))
	case total == 0:
		total = maxTimedEvents
	}
	accepted := make([]int64, total) // unix nanoseconds of each 202
	var (
		refused   atomic.Int64
		failure   atomic.Pointer[string]
		latencies = make([][]time.Duration, spec.Clients)
		next      atomic.Int64
		wg        sync.WaitGroup
	)
	fail := func(err error) { s := err.Error(); failure.CompareAndSwap(nil, &s) }
	// tickets paces the open loop: one per event, at Rate per second.
	var tickets chan int
	if spec.Rate > 0 {
		tickets = make(chan int, total)
	}
	start := time.Now()
	var deadline time.Time
	if spec.Rate == 0 && spec.Duration > 0 {
		deadline = start.Add(spec.Duration)
	}
	for c := range spec.Clients {
		wg.Go(func() {
			for failure.Load() == nil {
				var i int
				if tickets != nil {
					var ok bool
					if i, ok = <-tickets; !ok {
						return
					}
				} else if i = int(next.Add(1)) - 1; i >= total || (!deadline.IsZero() && time.Now().After(deadline)) {
					return
				}
				began := time.Now()
				body := fmt.Appendf(nil, `{"foo":"load","n":%d}`, i)
				for {
					status, err := post(client, spec.PostURL, body)
					if err != nil {
						fail(err)
						return
					}
					if status == http.StatusServiceUnavailable {
						refused.Add(1)
						time.Sleep(time.Millisecond)
						continue
					}
					if status != http.StatusAccepted {
						fail(fmt.Errorf("POST %s: status %d, want 202", spec.PostURL, status))
						return
					}
					break
				}
				now := time.Now()
				accepted[i] = now.UnixNano()
				latencies[c] = append(latencies[c], now.Sub(began))
			}
		})
	}
	var visible []int64
	followDone := make(chan error, 1)
	sent := make(chan int, 1) // how many events the reader is to see
	if spec.ReadURL != "" {
		visible = make([]int64, total)
		go func() { followDone <- follow(client, spec.ReadURL, spec.After, visible, sent) }()
	}
	if spec.Rate > 0 {
		interval := time.Second / time.Duration(spec.Rate)
		for i := range total {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			tickets <- i
		}
		close(tickets)
	}
	wg.Wait()
	res := loadResult{Refused: int(refused.Load()), Elapsed: time.Since(start)}
	if f := failure.Load(); f != nil {
		res.Err = *f
		return res
	}
	all := slices.Concat(latencies...)
	res.Accepted = len(all)
	sent <- res.Accepted
	accepted, visible = accepted[:res.Accepted], visible[:min(len(visible), res.Accepted)]
	slices.Sort(all)
	res.P50, res.P99 = percentile(all, 50), percentile(all, 99)
	if visible != nil {
		if err := <-followDone; err != nil {
			res.Err = err.Error()
			return res
		}
		last := slices.Max(accepted)
		lags := make([]time.Duration, len(visible))
		var lastVisible int64
		for i := range visible {
			lags[i] = max(0, time.Duration(visible[i]-accepted[i]))
			lastVisible = max(lastVisible, visible[i])
		}
		slices.Sort(lags)
		res.VisibleP50, res.VisibleP99, res.VisibleMax = percentile(lags, 50), percentile(lags, 99), lags[len(lags)-1]
		res.Drain = max(0, time.Duration(lastVisible-last))
	}
	return res
}

// follow reads the stream from after on, noting when each event became
// readable (by its payload's n), until it has seen as many as sent says.
func follow(client *http.Client, url string, after uint64, visible []int64, sent <-chan int) error {
	seen, want := 0, -1
	deadline := time.Now().Add(5 * time.Minute)
	for want < 0 || seen < want {
		if want < 0 {
			select {
			case want = <-sent:
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d events readable after 5 minutes", seen, want)
		}
		resp, err := client.Get(fmt.Sprintf("%s?after=%d&limit=1000", url, after))
		if err != nil {
			return err
		}
		var page struct {
			Events []struct {
				Sequence uint64          `json:"sequence"`
				Payload  json.RawMessage `json:"payload"`
			} `json:"events"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		_ = resp.Body.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", url, err)
		}
		now := time.Now().UnixNano()
		for _, ev := range page.Events {
			after = ev.Sequence
			var p struct{ N int }
			if json.Unmarshal(ev.Payload, &p) != nil || p.N < 0 || p.N >= len(visible) || visible[p.N] != 0 {
				continue
			}
			visible[p.N] = now
			seen++
		}
		if len(page.Events) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

// post sends one JSON event and drains the answer so the connection is reused.
func post(client *http.Client, url string, body []byte) (int, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// maxTimedEvents bounds a closed-loop run for a duration: far more than
// this machine's clients post in the durations the benchmarks use.
const maxTimedEvents = 4_000_000

// decodeJSON decodes resp's body into v.
func decodeJSON(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}
