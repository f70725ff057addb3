package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/test/loadgen"
	"github.com/eventsourcing-dev/eventsourcing-operator/test/natscluster"
)

const (
	// natsRounds is how many rounds the NATS benchmarks measure, a turn
	// of natsTurn for each side in each round.
	natsRounds = 10
	natsTurn   = 2 * time.Second
	// natsClients is how many clients post, or publish, at once.
	natsClients = 64
	// batchEvents is how many events one NDJSON request, or one bare
	// asynchronous batch, holds.
	batchEvents = 100
	// bareStream and bareSubject are where the bare client publishes, on
	// the servers the manager uses.
	bareStream  = "BARE"
	bareSubject = "bare"
)

// profileEnv names a directory: with it, the managers are built with
// -tags pprof and the NATS benchmarks write there CPU profiles of the
// manager (and of a lone server) under each load
// (nats-manager-single.cpu.pprof, nats-server-batch100.cpu.pprof,
// nats-cluster-manager-single.cpu.pprof, ...).
const profileEnv = "EVENTSOURCING_PERF_PROFILE"

// profileSeconds is how long that profile samples.
const profileSeconds = 10

// Roles of the processes whose CPU a side costs.
const (
	roleManager = "manager"
	roleServer  = "nats-server"
	roleHTTP202 = "http-202"
	roleBridge  = "http-nats"
)

// side is one set-up a benchmark gives load in turns: what the load
// generator does, and the processes that do the work, by role.
type side struct {
	name        string
	spec        loadgen.Spec
	eventsPerOp int
	cost        map[string][]int
}

// turnFigures is what one turn of one side measured.
type turnFigures struct {
	events  int
	elapsed time.Duration
	// cpu is each role's CPU time from the turn's start until every
	// process of the benchmark was quiet again and the tails caught up,
	// so that the work an event leaves behind (projections, the tail)
	// counts for it.
	cpu    map[string]time.Duration
	noCPU  bool          // /proc could not tell
	client time.Duration // the load generator's CPU
	p50    time.Duration
	// quiet is how long after the turn the processes took to be quiet
	// and caught up: the backlog the turn left (the projections catching
	// up); stalled the part of it the tail was behind with nothing busy.
	quiet, stalled time.Duration
}

func (t turnFigures) rate() float64 { return float64(t.events) / t.elapsed.Seconds() }

// cpuPerEvent is role's CPU µs per event, "" for every role together;
// NaN where /proc could not tell.
func (t turnFigures) cpuPerEvent(role string) float64 {
	if t.noCPU {
		return math.NaN()
	}
	var sum time.Duration
	for r, d := range t.cpu {
		if role == "" || r == role {
			sum += d
		}
	}
	return float64(sum.Microseconds()) / float64(t.events)
}

func (t turnFigures) clientCPUPerEvent() float64 {
	return float64(t.client.Microseconds()) / float64(t.events)
}

// quietWindow and quietCPU say when the processes are quiet: less than
// quietCPU of CPU between them over quietWindow (10% of a core); quietMax
// bounds the wait.
const (
	quietWindow = 200 * time.Millisecond
	quietCPU    = 20 * time.Millisecond
	quietMax    = 60 * time.Second
)

// settled is how a wait for the processes to be quiet ended.
type settled struct {
	// after is how long it took.
	after time.Duration
	// stalled is how long of it the processes were quiet while a consumer
	// (the manager's tail of a stream) still had events to deliver: the
	// tail waiting on something other than work.
	stalled time.Duration
	ok      bool // false: still busy, or behind, after quietMax
}

// waitQuiet waits until pids together use less than quietCPU over a
// quietWindow and, when behind is given, until it reports nothing left
// to deliver: what the last turn left to do (the tail, the projections
// catching up, JetStream's own work) is done before the next turn starts
// and is counted for the turn that caused it.
func waitQuiet(pids []int, behind func() bool) settled {
	start := time.Now()
	var st settled
	for time.Since(start) < quietMax {
		before, ok := totalCPU(pids)
		time.Sleep(quietWindow)
		after, ok2 := totalCPU(pids)
		if ok && ok2 && after-before >= quietCPU {
			continue
		}
		if behind == nil || !behind() {
			st.after, st.ok = time.Since(start), true
			return st
		}
		st.stalled += quietWindow
	}
	st.after = time.Since(start)
	return st
}

// consumersBehind reports whether any consumer on the servers at the
// monitoring URLs has messages left to deliver (JetStream's /jsz), or
// cannot tell.
func consumersBehind(monitors []string) bool {
	for _, m := range monitors {
		resp, err := http.Get(m + "/jsz?consumers=true")
		if err != nil {
			return true
		}
		var jsz struct {
			Accounts []struct {
				Streams []struct {
					Consumers []struct {
						NumPending uint64 `json:"num_pending"`
					} `json:"consumer_detail"`
				} `json:"stream_detail"`
			} `json:"account_details"`
		}
		err = json.NewDecoder(resp.Body).Decode(&jsz)
		_ = resp.Body.Close()
		if err != nil {
			return true
		}
		for _, a := range jsz.Accounts {
			for _, st := range a.Streams {
				for _, c := range st.Consumers {
					if c.NumPending > 0 {
						return true
					}
				}
			}
		}
	}
	return false
}

func totalCPU(pids []int) (time.Duration, bool) {
	var sum time.Duration
	for _, pid := range pids {
		d, ok := pidCPU(pid)
		if !ok {
			return 0, false
		}
		sum += d
	}
	return sum, true
}

// loadAverage is the machine's load average over the last minute.
func loadAverage() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	f, err := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// runRounds gives each side natsTurn of load in turns, natsRounds rounds,
// the order rotating from round to round so that every side takes every
// place. Before the first turn and after each one it waits for every
// process of every side to be quiet and, with behind, for the manager's
// tails to have caught up. It returns each side's turns, in rounds, and
// the load averages at the turns' starts.
func runRounds(b *testing.B, sides []side, behind func() bool) ([][]turnFigures, []float64) {
	b.Helper()
	var all []int
	for _, s := range sides {
		for _, pids := range s.cost {
			for _, pid := range pids {
				if !slices.Contains(all, pid) {
					all = append(all, pid)
				}
			}
		}
	}
	figures := make([][]turnFigures, len(sides))
	loads := make([]float64, 0, len(sides)*natsRounds)
	if !waitQuiet(all, behind).ok {
		b.Logf("the processes were still busy, or behind, %s after the start", quietMax)
	}
	for round := range natsRounds {
		var line strings.Builder
		fmt.Fprintf(&line, "round %d:", round+1)
		for k := range sides {
			i := (round + k) % len(sides)
			s := sides[i]
			loads = append(loads, loadAverage())
			before := map[string]time.Duration{}
			noCPU := false
			for role, pids := range s.cost {
				d, ok := totalCPU(pids)
				before[role], noCPU = d, noCPU || !ok
			}
			spec := s.spec
			spec.Duration = natsTurn
			res := runLoad(b, spec)
			quiet := waitQuiet(all, behind)
			if !quiet.ok {
				b.Logf("round %d, %s: the processes were still busy, or behind, %s after the turn", round+1, s.name, quietMax)
			}
			f := turnFigures{events: res.Accepted * s.eventsPerOp, elapsed: res.Elapsed, cpu: map[string]time.Duration{},
				client: res.CPU, p50: res.P50, quiet: quiet.after, stalled: quiet.stalled}
			for role, pids := range s.cost {
				d, ok := totalCPU(pids)
				f.cpu[role], f.noCPU = d-before[role], f.noCPU || noCPU || !ok
			}
			figures[i] = append(figures[i], f)
			fmt.Fprintf(&line, " %s %.0f events/s %.1fµs-cpu", s.name, f.rate(), f.cpuPerEvent(""))
			if f.stalled > 0 {
				fmt.Fprintf(&line, " (the tail stalled %s)", f.stalled)
			}
			line.WriteString(";")
		}
		b.Log(line.String())
	}
	return figures, loads
}

// reportSides puts the rounds' figures on b: each side's median events/s,
// p50, time until quiet after a turn, the turns after which the tail
// stalled (and for how long in all), CPU µs per event (each role's, their
// total, and the load generator's), and for each later side its rate over
// each earlier one's, round by round: the median, lowest and highest.
func reportSides(b *testing.B, sides []side, figures [][]turnFigures, loads []float64) {
	b.Helper()
	column := func(i int, f func(turnFigures) float64) []float64 {
		out := make([]float64, len(figures[i]))
		for r, t := range figures[i] {
			out[r] = f(t)
		}
		return out
	}
	for i, s := range sides {
		b.ReportMetric(median(column(i, turnFigures.rate)), s.name+"-events/s")
		b.ReportMetric(median(column(i, func(t turnFigures) float64 { return float64(t.p50.Microseconds()) })), s.name+"-p50-µs")
		b.ReportMetric(median(column(i, func(t turnFigures) float64 { return float64(t.quiet.Milliseconds()) })), s.name+"-quiet-after-ms")
		var stalls int
		var stalled time.Duration
		for _, t := range figures[i] {
			if t.stalled > 0 {
				stalls, stalled = stalls+1, stalled+t.stalled
			}
		}
		if stalls > 0 {
			b.ReportMetric(float64(stalls), s.name+"-tail-stalls")
			b.ReportMetric(stalled.Seconds(), s.name+"-tail-stalled-s")
		}
		roles := make([]string, 0, len(s.cost))
		for role := range s.cost {
			roles = append(roles, role)
		}
		slices.Sort(roles)
		for _, role := range roles {
			b.ReportMetric(median(column(i, func(t turnFigures) float64 { return t.cpuPerEvent(role) })), s.name+"-"+role+"-cpu-µs/event")
		}
		if len(roles) > 1 {
			b.ReportMetric(median(column(i, func(t turnFigures) float64 { return t.cpuPerEvent("") })), s.name+"-total-cpu-µs/event")
		}
		b.ReportMetric(median(column(i, turnFigures.clientCPUPerEvent)), s.name+"-client-cpu-µs/event")
	}
	for i := range sides {
		for j := range i {
			r := ratios(column(i, turnFigures.rate), column(j, turnFigures.rate))
			name := sides[i].name + "/" + sides[j].name
			b.ReportMetric(100*median(r), name+"-%")
			b.ReportMetric(100*slices.Min(r), name+"-lowest-%")
			b.ReportMetric(100*slices.Max(r), name+"-highest-%")
		}
	}
	b.ReportMetric(median(loads), "load-average")
}

// natsSetup is a NATS deployment with the manager on it and a bare stream
// beside the manager's.
type natsSetup struct {
	servers *natscluster.Cluster
	pids    []int // the servers'
	manager *manager
	// url is the manager's stream with the quick start's projections, as
	// startBenchManager gives it; streamOnlyURL the same Stream in a namespace
	// of its own with no projection.
	url, streamOnlyURL string
	pprof              string // the manager's pprof address, with profileEnv
	// null is an HTTP server in a process of its own that answers every
	// POST at once and stores nothing: what HTTP ingest costs before any
	// work, the ceiling of any HTTP path on this host.
	null *loadgen.SinkChild
	// bridge is an HTTP server in a process of its own that publishes
	// each POST to the bare stream with a bare nats.go client and answers
	// 202 once JetStream acknowledged it (loadgen.Bridge): the ceiling of
	// any HTTP ingest onto JetStream on this host.
	bridge *loadgen.SinkChild
	// behind reports whether the manager's tail of a stream has events
	// left to deliver.
	behind func() bool
}

// startNATS starts nodes (1: one server, no cluster; 3: a cluster on
// loopback) with JetStream on file storage at its default sync, a manager
// on it with replicas as --nats-replicas, the quick start applied in a
// namespace of its own and its Stream alone in another, and the bare
// stream of that many replicas.
func startNATS(b *testing.B, nodes, replicas int) *natsSetup {
	b.Helper()
	e := setup(b)
	bin, err := natscluster.Binary(repoRoot())
	if err != nil {
		b.Fatal(err)
	}
	s := &natsSetup{null: startSink(b)}
	profile := os.Getenv(profileEnv) != ""
	if nodes == 1 {
		s.servers = natscluster.StartServer(b, natscluster.Options{Binary: bin}, profile)
	} else {
		s.servers = natscluster.Start(b, natscluster.Options{Binary: bin})
	}
	monitors := make([]string, 0, nodes)
	for i := range nodes {
		s.pids = append(s.pids, s.servers.Pid(i))
		monitors = append(monitors, s.servers.MonitorURL(i))
	}
	s.behind = func() bool { return consumersBehind(monitors) }
	var environ []string
	if profile {
		s.pprof = freeAddress(b)
		environ = append(environ, "EVENTSOURCING_PPROF_ADDR="+s.pprof)
	}
	ns := fmt.Sprintf("perf-%d", time.Now().UnixNano())
	e.applySamples(b, ns)
	streamOnly := ns + "-stream"
	e.run(b, "create", "namespace", streamOnly)
	e.run(b, "apply", "-n", streamOnly, "-f", "config/samples/eventsourcing_v1alpha1_stream.yaml")
	s.manager = e.startManagerWithEnv(b, e.manager, "nats", "", environ,
		"--nats-url="+s.servers.URLs(), "--nats-replicas="+strconv.Itoa(replicas))
	waitStream(b, s.manager, ns)
	waitStream(b, s.manager, streamOnly)
	s.url = s.manager.api + "/v1/namespaces/" + ns + "/streams/" + benchStream + "/events"
	s.streamOnlyURL = s.manager.api + "/v1/namespaces/" + streamOnly + "/streams/" + benchStream + "/events"

	// Created as the manager creates its streams: a request unanswered
	// while a cluster settles is sent again.
	conn, err := natsstore.Connect(b.Context(), natsstore.Options{URL: s.servers.URLs()})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.CreateStream(b.Context(), jetstream.StreamConfig{
		Name: bareStream, Subjects: []string{bareSubject}, Storage: jetstream.FileStorage, Replicas: replicas,
	}); err != nil {
		b.Fatal(err)
	}
	if s.bridge, err = loadgen.StartBridgeInChild("TestReactorSinkProcess", s.servers.URLs(), bareSubject); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.bridge.Kill)
	return s
}

// sides are, on s, the bare client, an HTTP server that answers 202 and
// does nothing else (http-202), an HTTP server that publishes each request
// with the bare client (http-nats), the manager with the quick start's
// projections (nats) and the manager on the stream with no projection
// (nats-no-projections): single events, or batches of batchEvents.
func (s *natsSetup) sides(batch bool) []side {
	sides := []side{
		{name: "bare", cost: map[string][]int{roleServer: s.pids},
			spec: loadgen.Spec{NATS: &loadgen.NATSPublish{URL: s.servers.URLs(), Subject: bareSubject}}},
		{name: "http-202", cost: map[string][]int{roleHTTP202: {s.null.Pid()}},
			spec: loadgen.Spec{PostURL: "http://" + s.null.Addr + "/accept/ingest"}},
		{name: "http-nats", cost: map[string][]int{roleBridge: {s.bridge.Pid()}, roleServer: s.pids},
			spec: loadgen.Spec{PostURL: "http://" + s.bridge.Addr + "/"}},
		{name: "nats", spec: loadgen.Spec{PostURL: s.url}},
		{name: "nats-no-projections", spec: loadgen.Spec{PostURL: s.streamOnlyURL}},
	}
	body := ndjson(batchEvents)
	for i := range sides {
		sd := &sides[i]
		sd.spec.Clients, sd.eventsPerOp = natsClients, 1
		if sd.cost == nil {
			sd.cost = map[string][]int{roleManager: {s.manager.cmd.Process.Pid}, roleServer: s.pids}
		}
		if !batch {
			continue
		}
		sd.eventsPerOp, sd.spec.Body = batchEvents, body
		if sd.spec.NATS != nil {
			sd.spec.NATS.Async = true
		} else {
			sd.spec.ContentType = "application/x-ndjson"
		}
	}
	return sides
}

// ndjson is a batch request of n events, the payloads single events have.
func ndjson(n int) []byte {
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, "{\"foo\":\"load\",\"n\":%d}\n", i)
	}
	return buf.Bytes()
}

// BenchmarkManagerNATS is ingest through the manager on --storage=nats
// against its ceiling, a bare nats.go client publishing the same payloads
// to a stream on the same JetStream: one nats-server process with file
// storage at its default sync, the manager its own process, and the load
// from 64 clients in a third process (the bare client's as well). The
// manager takes the load on the quick start's stream with its three
// projections (nats), and on the same Stream with no projection in
// another namespace (nats-no-projections): what the projections cost.
// Two HTTP servers of their own process give the ceilings of HTTP ingest
// on the host: http-202 answers 202 and does nothing, http-nats publishes
// each request with the bare client and answers 202 once acknowledged.
//
//   - single: each client posts one JSON event and waits for the 202
//     (bare: Publish, waiting for the acknowledgement).
//   - batch100: each client posts NDJSON batches of 100 events (bare:
//     PublishAsync of 100, then waits for the 100 acknowledgements).
//
// The sides take 2 s of load in turns, ten rounds, the order rotating
// every round, and no turn starts until the processes are quiet again and
// the manager's tails have delivered every event (so the projections' work
// counts for the manager's turn); a tail that has events left while
// nothing is busy is reported as stalled. nats/bare-% is
// the median of the rounds' rate ratios; the CPU per event is from /proc,
// for the manager, the server and the load generator's process apart.
// With EVENTSOURCING_PERF_PROFILE set, CPU profiles of the manager and the
// server under each load (nats) are written there.
// -benchtime 1x.
func BenchmarkManagerNATS(b *testing.B) {
	benchmarkLoads(b, startNATS(b, 1, 1), "nats")
}

// BenchmarkManagerNATSCluster is BenchmarkManagerNATS on a cluster of three
// nats-server processes on loopback, with --nats-replicas=3 and a bare
// stream of three replicas; with EVENTSOURCING_PERF_PROFILE, only the
// manager is profiled. -benchtime 1x.
func BenchmarkManagerNATSCluster(b *testing.B) {
	benchmarkLoads(b, startNATS(b, natscluster.Size, natscluster.Size), "nats-cluster")
}

// benchmarkLoads runs the sides of s under single events, then batches, and
// with profileEnv profiles the manager (and a lone server) under each,
// into files named after set-up and load.
func benchmarkLoads(b *testing.B, s *natsSetup, setup string) {
	for _, batch := range []bool{false, true} {
		load := "single"
		if batch {
			load = "batch100"
		}
		b.Run(load, func(b *testing.B) {
			sides := s.sides(batch)
			figures, loads := runRounds(b, sides, s.behind)
			reportSides(b, sides, figures, loads)
			dir := os.Getenv(profileEnv)
			if dir == "" {
				return
			}
			files := map[string]string{"http://" + s.pprof: filepath.Join(dir, setup+"-manager-"+load+".cpu.pprof")}
			if url := s.servers.ProfileURL(); url != "" {
				files[url] = filepath.Join(dir, setup+"-server-"+load+".cpu.pprof")
			}
			profile(b, sideNamed(sides, "nats").spec, files)
		})
	}
}

// BenchmarkManagerStorages is single-event ingest on memory, disk and
// nats (one nats-server process, file storage) side by side, with the bare
// nats.go client of BenchmarkManagerNATS beside them for scale: a manager
// on each storage, the quick start applied to each, the same 64 clients
// in another process, 2 s turns in rotating order, ten rounds, each turn
// after every process is quiet. The nats side's CPU counts the manager
// and the server. -benchtime 1x.
func BenchmarkManagerStorages(b *testing.B) {
	s := startNATS(b, 1, 1)
	nats := s.sides(false)
	sides := append(make([]side, 0, 4), sideNamed(nats, "bare"))
	for _, storage := range []string{"memory", "disk"} {
		m, url, _ := startBenchManagerProcess(b, storage)
		sides = append(sides, side{name: storage, eventsPerOp: 1, cost: map[string][]int{roleManager: {m.cmd.Process.Pid}},
			spec: loadgen.Spec{PostURL: url, Clients: natsClients}})
	}
	sides = append(sides, sideNamed(nats, "nats"))
	figures, loads := runRounds(b, sides, s.behind)
	reportSides(b, sides, figures, loads)
}

// sideNamed is the side of sides named name.
func sideNamed(sides []side, name string) side {
	i := slices.IndexFunc(sides, func(s side) bool { return s.name == name })
	if i < 0 {
		panic("no side named " + name)
	}
	return sides[i]
}

// profile samples the CPU of processes (their pprof base URL: the file
// to write the profile to) for profileSeconds, together, while spec runs a
// little longer.
func profile(b *testing.B, spec loadgen.Spec, processes map[string]string) {
	b.Helper()
	spec.Duration = profileSeconds*time.Second + 2*time.Second
	done := make(chan error, 1)
	go func() {
		res, err := loadgen.RunInChild(spec, "TestLoadGeneratorProcess")
		if err == nil && res.Err != "" {
			err = errors.New(res.Err)
		}
		done <- err
	}()
	time.Sleep(time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, len(processes))
	for base, path := range processes {
		wg.Go(func() { errs <- fetchProfile(b.Context(), base, path) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	for _, path := range processes {
		b.Logf("CPU profile: %s", path)
	}
}

// fetchProfile writes the CPU profile of profileSeconds that the pprof
// endpoints at base give to path.
func fetchProfile(ctx context.Context, base, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*profileSeconds*time.Second)
	defer cancel()
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, profileSeconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", base, err)
	}
	data, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d, %v", url, resp.StatusCode, err)
	}
	return os.WriteFile(path, data, 0o644)
}
