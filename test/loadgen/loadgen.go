// Package loadgen posts events to the HTTP API as the benchmarks need:
// closed loop (each client posts again once answered) or open loop (a
// fixed rate), from keep-alive clients, to the stream or each client to an
// entity key of its own (optionally with If-Match), optionally following
// the stream to see when each event becomes readable; live readers
// (Server-Sent Events) note when each accepted event reaches each of them.
// With Spec.NATS the same clients publish the same payloads to JetStream
// with a bare nats.go client instead, the ceiling of --storage=nats.
// RunInChild and StartLiveInChild run them in other processes (the test
// binary again), where a load generator belongs: on two cores, clients in
// the server's process compete with it for the same Ps.
package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Spec is one load run. With Rate 0 the clients post as fast as they are
// answered (closed loop), N events or for Duration; with Rate > 0 they post
// Rate events per second for Duration (open loop). With ReadURL set, a
// reader follows the stream and notes when each event becomes readable.
type Spec struct {
	PostURL     string `json:"postURL"`
	ContentType string `json:"contentType"`
	// Body is every request's body; nil posts {"foo":"load","n":i} for the
	// i-th event, which the reader tells apart by n.
	Body     []byte        `json:"body,omitempty"`
	ReadURL  string        `json:"readURL,omitempty"`
	Clients  int           `json:"clients"`
	N        int           `json:"n"`
	Rate     int           `json:"rate"`
	Duration time.Duration `json:"duration"`
	// After is the stream's last sequence before the run: the reader
	// starts there.
	After uint64 `json:"after"`
	// KeyPrefix makes every request an append to an entity: client c
	// posts to the key KeyPrefix-c of PostURL's stream
	// (.../streams/{s}/keys/{KeyPrefix}-{c}/events), one key per client.
	// Give each run a prefix of its own, so that its keys start empty.
	KeyPrefix string `json:"keyPrefix,omitempty"`
	// IfMatch makes each keyed append conditional: If-Match with the
	// version its client's last 202 gave, "0" for the first.
	IfMatch bool `json:"ifMatch,omitempty"`
	// RecordAccepted keeps each accepted event's id and the time its 202
	// arrived, in Result.Events.
	RecordAccepted bool `json:"recordAccepted,omitempty"`
	// NATS, when set, has the clients publish the same payloads straight
	// to JetStream with a bare nats.go client instead of posting them:
	// the ceiling of what the manager on --storage=nats can take.
	NATS *NATSPublish `json:"nats,omitempty"`
}

// Result is what a run measured.
type Result struct {
	Accepted int           `json:"accepted"`
	Refused  int           `json:"refused"` // 503s, each retried after 1 ms
	Elapsed  time.Duration `json:"elapsed"`
	// Conflicts are 412s, each retried at the version its ETag gives. With
	// one client per key there should be none: each is a failure of the
	// server's version check.
	Conflicts int `json:"conflicts"`
	// P50 and P99 are the requests' latencies, a 503's wait included.
	P50, P99 time.Duration
	// With ReadURL: from a 202 to the event being readable.
	VisibleP50, VisibleP99, VisibleMax time.Duration
	// Drain is from the last 202 to every accepted event being readable.
	Drain time.Duration `json:"drain"`
	// Events are the accepted events, with RecordAccepted.
	Events []AcceptedEvent `json:"events,omitempty"`
	Err    string          `json:"err,omitempty"`
	// CPU is the CPU time the load generator's process used, user and
	// system, as RunInChild measures it (0 from Generate).
	CPU time.Duration `json:"cpu"`
}

// AcceptedEvent is one accepted event: the id its 202 gave and when that
// 202 arrived, in Unix nanoseconds (the wall clock, which other processes
// on the machine share).
type AcceptedEvent struct {
	ID string `json:"id"`
	At int64  `json:"at"`
}

// Rate is the requests answered 202 (with NATS: the publishes, or
// batches, acknowledged) per second.
func (r Result) Rate() float64 {
	return float64(r.Accepted) / r.Elapsed.Seconds()
}

// Report puts a run's ingest figures on b: events/s (eventsPerRequest
// events in each request), the requests' p50 and p99, the 503s and, when
// there were any, the 412s.
func (r Result) Report(b *testing.B, eventsPerRequest int) {
	b.ReportMetric(r.Rate()*float64(eventsPerRequest), "events/s")
	b.ReportMetric(float64(r.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(r.P99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(r.Refused), "503s")
	if r.Conflicts > 0 {
		b.ReportMetric(float64(r.Conflicts), "412s")
	}
}

// maxTimedEvents bounds a closed-loop run for a duration: far more than
// the clients post in the durations the benchmarks use.
const maxTimedEvents = 4_000_000

// Generate runs spec in this process.
func Generate(spec Spec) Result {
	transport := &http.Transport{MaxIdleConns: spec.Clients + 1, MaxIdleConnsPerHost: spec.Clients + 1}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	if spec.ContentType == "" {
		spec.ContentType = "application/json"
	}

	total := spec.N
	switch {
	case spec.Rate > 0:
		total = int(int64(spec.Rate) * int64(spec.Duration) / int64(time.Second))
	case total == 0:
		total = maxTimedEvents
	}
	accepted := make([]int64, total) // unix nanoseconds of each 202
	var ids []string                 // each 202's id, with RecordAccepted
	if spec.RecordAccepted {
		ids = make([]string, total)
	}
	var (
		refused   atomic.Int64
		conflicts atomic.Int64
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
	targets, closeTargets, err := newTargets(spec)
	if err != nil {
		return Result{Err: err.Error()}
	}
	defer closeTargets()
	for c, target := range targets {
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
				body := spec.Body
				if body == nil {
					body = fmt.Appendf(nil, `{"foo":"load","n":%d}`, i)
				}
				answer, err := target.send(client, spec.ContentType, body, &refused, &conflicts)
				if err != nil {
					fail(err)
					return
				}
				now := time.Now()
				accepted[i] = now.UnixNano()
				if ids != nil {
					if ids[i], err = acceptedID(answer); err != nil {
						fail(fmt.Errorf("POST %s: %w", target.url, err))
						return
					}
				}
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
	res := Result{Refused: int(refused.Load()), Conflicts: int(conflicts.Load()), Elapsed: time.Since(start)}
	if f := failure.Load(); f != nil {
		res.Err = *f
		return res
	}
	all := slices.Concat(latencies...)
	res.Accepted = len(all)
	slices.Sort(all)
	res.P50, res.P99 = percentile(all, 50), percentile(all, 99)
	res.Events = acceptedEvents(ids, accepted)
	if visible == nil {
		return res
	}
	sent <- res.Accepted
	if err := <-followDone; err != nil {
		res.Err = err.Error()
		return res
	}
	accepted, visible = accepted[:res.Accepted], visible[:res.Accepted]
	lags := make([]time.Duration, len(visible))
	var lastAccepted, lastVisible int64
	for i := range visible {
		lags[i] = max(0, time.Duration(visible[i]-accepted[i]))
		lastAccepted, lastVisible = max(lastAccepted, accepted[i]), max(lastVisible, visible[i])
	}
	slices.Sort(lags)
	res.VisibleP50, res.VisibleP99, res.VisibleMax = percentile(lags, 50), percentile(lags, 99), percentile(lags, 100)
	res.Drain = max(0, time.Duration(lastVisible-lastAccepted))
	return res
}

// acceptedEvents pairs the recorded ids with their 202s' times; nil
// without ids.
func acceptedEvents(ids []string, accepted []int64) []AcceptedEvent {
	if ids == nil {
		return nil
	}
	events := make([]AcceptedEvent, 0, len(ids))
	for i, id := range ids {
		if id != "" {
			events = append(events, AcceptedEvent{ID: id, At: accepted[i]})
		}
	}
	return events
}

// target is where one client posts: the stream, or its own key, whose
// version it follows from the answers; or, with pub, where it publishes.
type target struct {
	url     string
	keyed   bool
	ifMatch bool
	version uint64 // the key's version as the client's last answer gave it
	pub     *natsPublisher
}

// newTargets returns each client's target and what closes them.
func newTargets(spec Spec) ([]*target, func(), error) {
	targets := make([]*target, spec.Clients)
	for c := range targets {
		var err error
		if targets[c], err = newTarget(spec, c); err != nil {
			return nil, nil, err
		}
	}
	if spec.NATS == nil {
		return targets, func() {}, nil
	}
	pub, err := newNATSPublisher(spec)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range targets {
		t.pub = pub
	}
	return targets, pub.close, nil
}

// send delivers body: published (no answer), or posted until taken.
func (t *target) send(client *http.Client, contentType string, body []byte, refused, conflicts *atomic.Int64) ([]byte, error) {
	if t.pub != nil {
		return nil, t.pub.publish(body)
	}
	return t.postUntilTaken(client, contentType, body, refused, conflicts)
}

func newTarget(spec Spec, client int) (*target, error) {
	if spec.KeyPrefix == "" {
		return &target{url: spec.PostURL}, nil
	}
	stream, ok := strings.CutSuffix(spec.PostURL, "/events")
	if !ok {
		return nil, fmt.Errorf("keyed appends need PostURL to be a stream's .../events, got %s", spec.PostURL)
	}
	key := fmt.Sprintf("%s-%d", spec.KeyPrefix, client)
	return &target{url: stream + "/keys/" + url.PathEscape(key) + "/events", keyed: true, ifMatch: spec.IfMatch}, nil
}

// acceptedID is the id a 202's body gives.
func acceptedID(body []byte) (string, error) {
	var a struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.ID == "" {
		return "", fmt.Errorf("202 body %q has no id", body)
	}
	return a.ID, nil
}

// postUntilTaken posts body until it is answered 202, retrying a 503 (the
// outbox is full) after 1 ms: a real client would wait its Retry-After. A
// 412 is counted and retried at the version its ETag gives, as a client
// that re-reads the entity would. On a key, each 202 must give the next
// version: the client is the key's only writer. It returns the 202's body.
func (t *target) postUntilTaken(
	client *http.Client, contentType string, body []byte, refused, conflicts *atomic.Int64,
) ([]byte, error) {
	header := http.Header{"Content-Type": {contentType}}
	for {
		if t.ifMatch {
			header.Set("If-Match", `"`+strconv.FormatUint(t.version, 10)+`"`)
		}
		status, tag, answer, err := post(client, t.url, header, body)
		switch {
		case err != nil:
			return nil, err
		case status == http.StatusServiceUnavailable:
			refused.Add(1)
			time.Sleep(time.Millisecond)
		case status == http.StatusPreconditionFailed && t.keyed:
			conflicts.Add(1)
			if t.version, err = parseVersion(tag); err != nil {
				return nil, fmt.Errorf("POST %s: 412: %w", t.url, err)
			}
		case status != http.StatusAccepted:
			return nil, fmt.Errorf("POST %s: status %d, want 202", t.url, status)
		case !t.keyed:
			return answer, nil
		default:
			v, err := parseVersion(tag)
			if err != nil {
				return nil, fmt.Errorf("POST %s: 202: %w", t.url, err)
			}
			if v != t.version+1 {
				return nil, fmt.Errorf("POST %s: 202 gave version %d after %d; the key has no other writer", t.url, v, t.version)
			}
			t.version = v
			return answer, nil
		}
	}
}

// parseVersion reads a version from its strong ETag, "N".
func parseVersion(tag string) (uint64, error) {
	if len(tag) < 3 || tag[0] != '"' || tag[len(tag)-1] != '"' {
		return 0, fmt.Errorf("ETag %q is not a version such as \"3\"", tag)
	}
	return strconv.ParseUint(tag[1:len(tag)-1], 10, 64)
}

// follow reads the stream from after on, noting when each event became
// readable (by its payload's n), until it has seen as many as sent says.
func follow(client *http.Client, addr string, after uint64, visible []int64, sent <-chan int) error {
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
		resp, err := client.Get(fmt.Sprintf("%s?after=%d&limit=1000", addr, after))
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
			return fmt.Errorf("read %s: %w", addr, err)
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

// Post sends one request and drains the answer so the connection is reused.
func Post(client *http.Client, addr, contentType string, body []byte) (int, error) {
	status, _, _, err := post(client, addr, http.Header{"Content-Type": {contentType}}, body)
	return status, err
}

// post sends one request with header and returns the status, the ETag and
// the answer's body, read in full so the connection is reused.
func post(client *http.Client, addr string, header http.Header, body []byte) (int, string, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, addr, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	req.Header = header
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	answer, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return 0, "", nil, fmt.Errorf("POST %s: read the answer: %w", addr, err)
	}
	return resp.StatusCode, resp.Header.Get("ETag"), answer, nil
}

// specEnv carries a Spec to the child process, as JSON.
const specEnv = "EVENTSOURCING_LOADGEN_SPEC"

// resultPrefix starts the child's line that holds its Result.
const resultPrefix = "loadgen-result: "

// RunInChild runs spec in a child process: this test binary again, running
// only the test named child, which must call ServeChild.
func RunInChild(spec Spec, child string) (Result, error) {
	raw, err := json.Marshal(spec)
	if err != nil {
		return Result{}, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), specEnv+"="+string(raw))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Result{}, fmt.Errorf("load generator process: %w: %s%s", err, out, stderr.String())
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	_, line, ok := strings.Cut(string(out), resultPrefix)
	if !ok {
		return Result{}, fmt.Errorf("the load generator printed no result: %s", out)
	}
	line, _, _ = strings.Cut(line, "\n")
	var res Result
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return Result{}, fmt.Errorf("load generator result %q: %w", line, err)
	}
	res.CPU = cpu
	return res, nil
}

// ServeChild is the body of the test RunInChild names: in the child it
// runs the Spec it was given and prints the Result; run any other way, the
// test is skipped.
func ServeChild(t *testing.T) {
	raw := os.Getenv(specEnv)
	if raw == "" {
		t.Skip("the load generator of the benchmarks, run by loadgen.RunInChild")
	}
	var spec Spec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(Generate(spec))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", resultPrefix, out)
}
