package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/test/sse"
)

// LiveSpec is a set of live readers: Readers connections that each follow
// URL (a stream's or a key's events) with Accept: text/event-stream from
// After on, and reconnect with Last-Event-ID when the server ends the
// answer, as an EventSource does.
type LiveSpec struct {
	URL     string `json:"url"`
	Readers int    `json:"readers"`
	After   uint64 `json:"after"`
	// Wait bounds how long Finish waits for the readers to see every
	// accepted event; 0 means a minute.
	Wait time.Duration `json:"wait,omitempty"`
}

// LiveResult is what the live readers saw of the accepted events.
type LiveResult struct {
	// Seen is, for each reader, how many of the accepted events it got.
	Seen []int `json:"seen"`
	// Duplicates, OutOfOrder and Unknown count, over every reader, the
	// events a reader got again, got with an id not above the one before,
	// and got without a 202 for them among the accepted events.
	Duplicates int `json:"duplicates"`
	OutOfOrder int `json:"outOfOrder"`
	Unknown    int `json:"unknown"`
	// Reconnects counts the answers the server ended (a reader too slow),
	// each resumed with Last-Event-ID.
	Reconnects int `json:"reconnects"`
	// Comments are the distinct comment lines, other than heartbeats, the
	// server sent (why it ended answers).
	Comments []string `json:"comments,omitempty"`
	// From an event's 202 at its poster to its arrival at a reader, over
	// every reader and event seen; an arrival before the 202 counts as 0.
	P50, P99, Max time.Duration
	// CPU is the readers' process's CPU time, user and system, when they
	// ran in a child process.
	CPU time.Duration `json:"cpu,omitempty"`
	Err string        `json:"err,omitempty"`
}

// MinSeen is the fewest accepted events a reader saw.
func (r LiveResult) MinSeen() int {
	if len(r.Seen) == 0 {
		return 0
	}
	return slices.Min(r.Seen)
}

// arrival is one event a live reader got: its SSE id, its event id and
// when its id line was read, in Unix nanoseconds.
type arrival struct {
	seq uint64
	id  string
	at  int64
}

// liveReader is one live read, reconnecting as an EventSource does.
type liveReader struct {
	arrivals   []arrival
	seen       atomic.Int64
	exited     atomic.Bool
	reconnects int
	comments   []string
	err        error
}

// LiveReaders are live readers running in this process.
type LiveReaders struct {
	spec    LiveSpec
	readers []*liveReader
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// StartLiveReaders connects spec.Readers live readers and returns once
// every one has its answer's headers: from then on, each sees whatever is
// stored after spec.After.
func StartLiveReaders(spec LiveSpec) (*LiveReaders, error) {
	if spec.Wait == 0 {
		spec.Wait = time.Minute
	}
	// One connection each, no timeout: a live read lasts as long as it is wanted.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: spec.Readers}}
	ctx, cancel := context.WithCancel(context.Background())
	l := &LiveReaders{spec: spec, cancel: cancel}
	connected := make(chan error, spec.Readers)
	for range spec.Readers {
		r := &liveReader{}
		l.readers = append(l.readers, r)
		l.wg.Go(func() {
			defer r.exited.Store(true)
			r.run(ctx, client, spec, connected)
		})
	}
	errs := make([]error, 0, spec.Readers)
	for range spec.Readers {
		errs = append(errs, <-connected)
	}
	if err := errors.Join(errs...); err != nil {
		cancel()
		l.wg.Wait()
		return nil, err
	}
	return l, nil
}

// run follows the stream until ctx ends, reconnecting with the id of the
// last event it got; the first connection's outcome goes to connected.
func (r *liveReader) run(ctx context.Context, client *http.Client, spec LiveSpec, connected chan<- error) {
	last := spec.After
	for first := true; ; first = false {
		// The first URL each time, as an EventSource: the header wins.
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s?after=%d", spec.URL, spec.After), nil)
		if err != nil {
			connected <- err
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		if !first {
			req.Header.Set("Last-Event-ID", strconv.FormatUint(last, 10))
		}
		resp, err := client.Do(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			err = fmt.Errorf("GET %s: status %d, want 200: %s", spec.URL, resp.StatusCode, body)
		}
		switch {
		case first:
			connected <- err
			if err != nil {
				return
			}
		case ctx.Err() != nil:
			return
		case err != nil:
			r.err = err
			return
		}
		last = r.read(resp.Body, last)
		_ = resp.Body.Close()
		if ctx.Err() != nil {
			return
		}
		r.reconnects++
	}
}

// read parses an answer's events until it ends, and returns the id of the
// last event it got.
func (r *liveReader) read(body io.Reader, last uint64) uint64 {
	_ = sse.Read(body, func(m sse.Message) bool {
		switch {
		case m.Comment != "":
			if c := strings.TrimSpace(m.Comment); c != "keep-alive" && !slices.Contains(r.comments, c) {
				r.comments = append(r.comments, c)
			}
		case m.ID != "":
			ev := arrival{at: time.Now().UnixNano(), id: eventID([]byte(m.Data))}
			ev.seq, _ = strconv.ParseUint(m.ID, 10, 64)
			r.arrivals = append(r.arrivals, ev)
			r.seen.Add(1)
			last = ev.seq
		}
		return true
	})
	return last
}

// eventID is the id of an event view: read from the front when the view
// starts with it, as the API writes it, else decoded.
func eventID(data []byte) string {
	if rest, ok := bytes.CutPrefix(data, []byte(`{"id":"`)); ok {
		if id, _, ok := bytes.Cut(rest, []byte(`"`)); ok && !bytes.ContainsRune(id, '\\') {
			return string(id)
		}
	}
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &v) != nil || v.ID == "" {
		return "?" // counted as unknown
	}
	return v.ID
}

// Finish waits, for at most the spec's Wait, until every reader has seen
// as many events as were accepted, stops the readers, and matches what
// each saw with the accepted events by id.
func (l *LiveReaders) Finish(accepted []AcceptedEvent) LiveResult {
	deadline := time.Now().Add(l.spec.Wait)
	for _, r := range l.readers {
		for r.seen.Load() < int64(len(accepted)) && !r.exited.Load() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	l.cancel()
	l.wg.Wait()

	posted := make(map[string]int64, len(accepted))
	for _, a := range accepted {
		posted[a.ID] = a.At
	}
	res := LiveResult{Seen: make([]int, len(l.readers))}
	lags := make([]time.Duration, 0, len(l.readers)*len(accepted))
	var errs []error
	for i, r := range l.readers {
		got := make(map[string]bool, len(r.arrivals))
		var prev uint64
		for _, a := range r.arrivals {
			if a.seq <= prev {
				res.OutOfOrder++
			}
			prev = max(prev, a.seq)
			at, ok := posted[a.id]
			switch {
			case got[a.id]:
				res.Duplicates++
			case !ok:
				res.Unknown++
			default:
				got[a.id] = true
				res.Seen[i]++
				lags = append(lags, max(0, time.Duration(a.at-at)))
			}
		}
		res.Reconnects += r.reconnects
		for _, c := range r.comments {
			if !slices.Contains(res.Comments, c) {
				res.Comments = append(res.Comments, c)
			}
		}
		if r.err != nil {
			errs = append(errs, fmt.Errorf("reader %d: %w", i, r.err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		res.Err = err.Error()
	}
	slices.Sort(lags)
	res.P50, res.P99, res.Max = percentile(lags, 50), percentile(lags, 99), percentile(lags, 100)
	return res
}

// liveSpecEnv carries a LiveSpec to the child process, as JSON.
const liveSpecEnv = "EVENTSOURCING_LOADGEN_LIVE_SPEC"

const (
	// liveReadyLine is the child's line once its readers are connected.
	liveReadyLine = "loadgen-live-ready"
	// liveResultPrefix starts the child's line that holds its LiveResult.
	liveResultPrefix = "loadgen-live-result: "
)

// LiveChild is live readers running in a child process: this test binary
// again, running only the test StartLiveInChild names, which must call
// ServeLiveChild.
type LiveChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr bytes.Buffer
	out    strings.Builder // what the child printed, for errors
	done   bool
}

// StartLiveInChild starts the readers of spec in a child process and
// returns once they are connected.
func StartLiveInChild(spec LiveSpec, child string) (*LiveChild, error) {
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	c := &LiveChild{cmd: exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")}
	c.cmd.Env = append(os.Environ(), liveSpecEnv+"="+string(raw))
	c.cmd.Stderr = &c.stderr
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.stdout = bufio.NewReader(stdout)
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	for {
		line, err := c.stdout.ReadString('\n')
		c.out.WriteString(line)
		if strings.HasPrefix(line, liveReadyLine) {
			return c, nil
		}
		if err != nil {
			c.Kill()
			return nil, fmt.Errorf("the live readers' process did not connect: %s%s", c.out.String(), c.stderr.String())
		}
	}
}

// Finish hands the child the accepted events and returns what its readers
// saw of them.
func (c *LiveChild) Finish(accepted []AcceptedEvent) (LiveResult, error) {
	err := json.NewEncoder(c.stdin).Encode(accepted)
	_ = c.stdin.Close()
	rest, readErr := io.ReadAll(c.stdout)
	c.out.Write(rest)
	waitErr := c.cmd.Wait()
	c.done = true
	if err := errors.Join(err, readErr, waitErr); err != nil {
		return LiveResult{}, fmt.Errorf("live readers' process: %w: %s%s", err, c.out.String(), c.stderr.String())
	}
	_, line, ok := strings.Cut(c.out.String(), liveResultPrefix)
	if !ok {
		return LiveResult{}, fmt.Errorf("the live readers' process printed no result: %s", c.out.String())
	}
	line, _, _ = strings.Cut(line, "\n")
	var res LiveResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return LiveResult{}, fmt.Errorf("live readers' result %q: %w", line, err)
	}
	res.CPU = c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()
	return res, nil
}

// Kill ends the child unless Finish has.
func (c *LiveChild) Kill() {
	if c.done {
		return
	}
	c.done = true
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// ServeLiveChild is the body of the test StartLiveInChild names: in the
// child it connects the readers of the LiveSpec it was given, says so,
// reads the accepted events from stdin and prints the LiveResult; run any
// other way, the test is skipped.
func ServeLiveChild(t *testing.T) {
	raw := os.Getenv(liveSpecEnv)
	if raw == "" {
		t.Skip("the live readers of the benchmarks, run by loadgen.StartLiveInChild")
	}
	var spec LiveSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	readers, err := StartLiveReaders(spec)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(liveReadyLine)
	var accepted []AcceptedEvent
	if err := json.NewDecoder(os.Stdin).Decode(&accepted); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(readers.Finish(accepted))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", liveResultPrefix, out)
}
