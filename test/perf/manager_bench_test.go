package perf

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/test/loadgen"
)

// benchStream is the sample stream, in a namespace of each benchmark's own.
const benchStream = "items-events"

// waitStream posts a warm-up event until the manager takes it (its
// controller has applied the stream), and returns the stream's last sequence
// once that event is readable.
func waitStream(b *testing.B, m *manager, ns string) uint64 {
	b.Helper()
	url := m.api + "/v1/namespaces/" + ns + "/streams/" + benchStream + "/events"
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		status, err := loadgen.Post(client, url, "application/json", []byte(`{"foo":"warm-up","n":-1}`))
		if err == nil && status == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the stream %s/%s takes no events a minute after it was applied: status %d, error %v", ns, benchStream, status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		if seq := lastSequence(b, client, url); seq > 0 {
			return seq
		}
		if time.Now().After(deadline) {
			b.Fatalf("the warm-up event of %s/%s is not readable a minute on", ns, benchStream)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lastSequence is the sequence of the stream's last readable event, read
// page by page.
func lastSequence(b *testing.B, client *http.Client, url string) uint64 {
	b.Helper()
	var after uint64
	for {
		resp, err := client.Get(fmt.Sprintf("%s?after=%d&limit=1000", url, after))
		if err != nil {
			b.Fatal(err)
		}
		var page struct {
			Next   uint64            `json:"next"`
			Events []json.RawMessage `json:"events"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		_ = resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		if len(page.Events) == 0 {
			return after
		}
		after = page.Next
	}
}

// startBenchManager starts a manager on storage with the samples applied
// in a namespace of its own, and returns the stream's URL and last
// sequence.
func startBenchManager(b *testing.B, storage string) (string, uint64) {
	b.Helper()
	_, url, after := startBenchManagerProcess(b, storage)
	return url, after
}

// startBenchManagerProcess is startBenchManager that also returns the
// manager.
func startBenchManagerProcess(b *testing.B, storage string) (*manager, string, uint64) {
	b.Helper()
	return startBenchManagerBinary(b, setup(b).manager, storage)
}

// startBenchManagerBinary is startBenchManagerProcess for the manager
// binary bin.
func startBenchManagerBinary(b *testing.B, bin, storage string) (*manager, string, uint64) {
	b.Helper()
	e := setup(b)
	ns := fmt.Sprintf("perf-%d", time.Now().UnixNano())
	e.applySamples(b, ns)
	m := e.startManagerBinary(b, bin, storage, b.TempDir())
	after := waitStream(b, m, ns)
	return m, m.api + "/v1/namespaces/" + ns + "/streams/" + benchStream + "/events", after
}

// BenchmarkManagerIngest is single-event ingest over HTTP against the
// manager binary, 64 keep-alive clients in another process, with the
// quick start's stream and three projections; memory and disk side by side.
// make bench-manager runs BenchmarkManagerIngestInterleaved instead, which
// compares the two under the same conditions.
func BenchmarkManagerIngest(b *testing.B) {
	for _, storage := range []string{"memory", "disk"} {
		b.Run("storage="+storage, func(b *testing.B) {
			url, _ := startBenchManager(b, storage)
			b.ResetTimer()
			res := runLoad(b, loadgen.Spec{PostURL: url, Clients: 64, N: b.N})
			b.StopTimer()
			res.Report(b, 1)
		})
	}
}

// BenchmarkManagerReadable is how long an accepted event takes to become
// readable on disk storage: 5,000 events/s for 5 s (open loop, 64 clients)
// while a reader follows the stream; drain-ms is from the last 202 to the
// last event readable. Each iteration is one such run: use -benchtime 1x.
func BenchmarkManagerReadable(b *testing.B) {
	for range b.N {
		url, after := startBenchManager(b, "disk")
		res := runLoad(b, loadgen.Spec{PostURL: url, ReadURL: url, Clients: 64, Rate: 5000, Duration: 5 * time.Second, After: after})
		b.ReportMetric(res.Rate(), "events/s")
		b.ReportMetric(float64(res.VisibleP50.Microseconds())/1000, "readable-p50-ms")
		b.ReportMetric(float64(res.VisibleP99.Microseconds())/1000, "readable-p99-ms")
		b.ReportMetric(float64(res.VisibleMax.Microseconds())/1000, "readable-max-ms")
		b.ReportMetric(float64(res.Drain.Microseconds())/1000, "drain-ms")
		b.ReportMetric(float64(res.P99.Microseconds())/1000, "202-p99-ms")
	}
}

// BenchmarkManagerBacklog is 16 clients posting single events as fast as
// they are answered for 10 s on disk storage while a reader follows the
// stream: drain-ms is how long after the last 202 the last accepted event
// becomes readable, the backlog the processor had left. -benchtime 1x.
func BenchmarkManagerBacklog(b *testing.B) {
	for range b.N {
		url, after := startBenchManager(b, "disk")
		res := runLoad(b, loadgen.Spec{PostURL: url, ReadURL: url, Clients: 16, Duration: 10 * time.Second, After: after})
		b.ReportMetric(res.Rate(), "events/s")
		b.ReportMetric(float64(res.VisibleP99.Microseconds())/1000, "readable-p99-ms")
		b.ReportMetric(float64(res.Drain.Microseconds())/1000, "drain-ms")
	}
}

// interleavedRounds is how many pairs BenchmarkManagerIngestInterleaved
// measures.
const interleavedRounds = 10

// BenchmarkManagerIngestInterleaved is BenchmarkManagerIngest made robust
// to a machine whose speed drifts (a VM with noisy neighbours): a memory
// and a disk manager run side by side and take 2 s of load in turn, ten
// pairs, the order swapped every pair, so each ratio compares seconds
// measured under the same conditions. It reports the medians and the
// median, lowest and highest ratio of the pairs, and each manager's median
// CPU µs per accepted event (from /proc: on a shared machine a steadier
// measure of cost than a rate). -benchtime 1x.
func BenchmarkManagerIngestInterleaved(b *testing.B) {
	for range b.N {
		e := setup(b)
		interleave(b, [2]contender{
			{name: "memory", storage: "memory", binary: e.manager},
			{name: "disk", storage: "disk", binary: e.manager},
		})
	}
}

// managerBEnv names a second manager binary for BenchmarkManagerIngestAB.
const managerBEnv = "EVENTSOURCING_PERF_MANAGER_B"

// BenchmarkManagerIngestAB compares two builds of the manager on disk
// storage as BenchmarkManagerIngestInterleaved compares memory and disk:
// side by side, 2 s of load in turn, ten pairs. A is this checkout's
// manager (or EVENTSOURCING_PERF_MANAGER), B the binary
// EVENTSOURCING_PERF_MANAGER_B names; b/a-% is the median of the pairs'
// rate ratios, b/a-cpu-% of their CPU per event ratios. Both managers
// write to the same disk in turn, so a change in what fdatasync costs
// falls on both. -benchtime 1x.
func BenchmarkManagerIngestAB(b *testing.B) {
	other := os.Getenv(managerBEnv)
	if other == "" {
		b.Skip(managerBEnv + " names no second manager binary")
	}
	for range b.N {
		e := setup(b)
		interleave(b, [2]contender{
			{name: "a", storage: "disk", binary: e.manager},
			{name: "b", storage: "disk", binary: other},
		})
	}
}

// contender is one of the two managers interleave compares.
type contender struct {
	name, storage, binary string
}

// interleave starts the two managers and gives them 2 s of single-event
// load from 64 clients in turn, interleavedRounds pairs, the order swapped
// every pair. It reports each one's median rate and CPU µs per accepted
// event, and the median, lowest and highest of the pairs' ratios of the
// second to the first.
func interleave(b *testing.B, cs [2]contender) {
	b.Helper()
	var managers [2]*manager
	var urls [2]string
	for i, c := range cs {
		managers[i], urls[i], _ = startBenchManagerBinary(b, c.binary, c.storage)
	}
	var rates, cpus [2][]float64
	ratios := make([]float64, 0, interleavedRounds)
	cpuRatios := make([]float64, 0, interleavedRounds)
	turn := func(i int) (rate, cpu float64) {
		m := managers[i]
		before, ok1 := m.cpuTime()
		res := runLoad(b, loadgen.Spec{PostURL: urls[i], Clients: 64, Duration: 2 * time.Second})
		after, ok2 := m.cpuTime()
		if ok1 && ok2 && res.Accepted > 0 {
			cpu = float64((after - before).Microseconds()) / float64(res.Accepted)
			cpus[i] = append(cpus[i], cpu)
		}
		return res.Rate(), cpu
	}
	for round := range interleavedRounds {
		var rate, cpu [2]float64
		for _, i := range [][2]int{{0, 1}, {1, 0}}[round%2] {
			rate[i], cpu[i] = turn(i)
		}
		rates[0], rates[1] = append(rates[0], rate[0]), append(rates[1], rate[1])
		ratios = append(ratios, rate[1]/rate[0])
		if cpu[0] > 0 && cpu[1] > 0 {
			cpuRatios = append(cpuRatios, cpu[1]/cpu[0])
		}
	}
	first, second := cs[0].name, cs[1].name
	b.ReportMetric(median(rates[0]), first+"-events/s")
	b.ReportMetric(median(rates[1]), second+"-events/s")
	b.ReportMetric(100*median(ratios), second+"/"+first+"-%")
	b.ReportMetric(100*slices.Min(ratios), "lowest-%")
	b.ReportMetric(100*slices.Max(ratios), "highest-%")
	for i, c := range cs {
		if len(cpus[i]) > 0 {
			b.ReportMetric(median(cpus[i]), c.name+"-cpu-µs/event")
		}
	}
	if len(cpuRatios) > 0 {
		b.ReportMetric(100*median(cpuRatios), second+"/"+first+"-cpu-%")
	}
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
