package perf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/test/loadgen"
)

const (
	// reactorEvents are delivered in each turn of
	// BenchmarkManagerReactorDelivery, over reactorKeys keys.
	reactorEvents = 20000
	reactorKeys   = 1000
	// reactorRounds is how many rounds it measures.
	reactorRounds = 3
)

// reactorPayload is every delivered event's payload.
var reactorPayload = []byte(`{"sku":"A-1","amount":12}`)

// BenchmarkManagerReactorDelivery is a Reactor as users meet it: the
// manager binary delivers the 20,000 events of a stream (over 1,000 keys,
// stored before the turn) to a sink in a process of its own that answers
// 200 at once, KeyOrdered with 16 in flight, against a bare Go HTTP client
// (in the benchmark's process) posting the same events with the same
// CloudEvents headers to the same sink with 16 workers: the ceiling of what
// a client can push there. Each turn applies a new Reactor starting from
// the beginning of the stream; rates are taken at the sink, from its first
// request to its last. With replies the sink answers each event with one
// CloudEvent, which the manager appends to a reply stream (the bare client
// reads and drops it). Rounds alternate their order; it reports the
// medians, the ratios round by round and the manager's CPU µs per delivery.
// Memory and disk storage; -benchtime 1x.
func BenchmarkManagerReactorDelivery(b *testing.B) {
	for _, storage := range []string{"memory", "disk"} {
		b.Run("storage="+storage, func(b *testing.B) {
			for range b.N {
				benchReactorDelivery(b, storage)
			}
		})
	}
}

func benchReactorDelivery(b *testing.B, storage string) {
	e := setup(b)
	sink := startSink(b)
	ns := fmt.Sprintf("perf-rx-%d", time.Now().UnixNano())
	e.run(b, "create", "namespace", ns)
	e.apply(b, ns, streamYAML("orders")+"---\n"+streamYAML("shipments"))
	m := e.startManager(b, storage, b.TempDir(), "--allow-private-sinks")
	preloadKeyed(b, m.api+"/v1/namespaces/"+ns+"/streams/orders/events", reactorEvents, reactorKeys)

	type figures struct{ rates, cpu []float64 }
	results := map[string]*figures{}
	turn := 0
	measure := func(kind, mode string) {
		turn++
		run := fmt.Sprintf("%s-%s-%d", kind, mode, turn)
		f := results[kind+"-"+mode]
		if f == nil {
			f = &figures{}
			results[kind+"-"+mode] = f
		}
		target := "http://" + sink.Addr + "/" + mode + "/" + run
		if kind == "bare" {
			before := processCPU()
			if err := loadgen.Deliver(target, reactorEvents, 16, reactorKeys, reactorPayload); err != nil {
				b.Fatal(err)
			}
			f.cpu = append(f.cpu, float64((processCPU()-before).Microseconds())/reactorEvents)
			f.rates = append(f.rates, waitSink(b, sink, run, reactorEvents).Rate())
			return
		}
		reply := ""
		if mode == "reply" {
			reply = "shipments"
		}
		before, ok1 := m.cpuTime()
		e.apply(b, ns, reactorYAML(run, "orders", target, reply, "1s"))
		st := waitSink(b, sink, run, reactorEvents)
		after, ok2 := m.cpuTime()
		f.rates = append(f.rates, st.Rate())
		if ok1 && ok2 {
			f.cpu = append(f.cpu, float64((after-before).Microseconds())/float64(st.Requests))
		}
		e.run(b, "delete", "-n", ns, "reactor", run, "--wait=false")
	}
	for round := range reactorRounds {
		for _, mode := range []string{"ok", "reply"} {
			if round%2 == 0 {
				measure("bare", mode)
				measure("reactor", mode)
			} else {
				measure("reactor", mode)
				measure("bare", mode)
			}
		}
		b.Logf("round %d: bare %.0f/s, reactor %.0f/s, bare (replies) %.0f/s, reactor with replies %.0f/s", round+1,
			results["bare-ok"].rates[round], results["reactor-ok"].rates[round],
			results["bare-reply"].rates[round], results["reactor-reply"].rates[round])
	}
	for _, mode := range []string{"ok", "reply"} {
		bare, rx := results["bare-"+mode], results["reactor-"+mode]
		name := map[string]string{"ok": "", "reply": "with-replies-"}[mode]
		r := ratios(rx.rates, bare.rates)
		b.ReportMetric(median(bare.rates), "bare-"+name+"deliveries/s")
		b.ReportMetric(median(rx.rates), "reactor-"+name+"deliveries/s")
		b.ReportMetric(100*median(r), "reactor/bare-"+name+"%")
		b.ReportMetric(100*slices.Min(r), "reactor/bare-"+name+"lowest-%")
		b.ReportMetric(median(bare.cpu), "bare-"+name+"cpu-µs/delivery")
		if len(rx.cpu) > 0 {
			b.ReportMetric(median(rx.cpu), "reactor-"+name+"cpu-µs/delivery")
		}
	}
}

// processCPU is the CPU time this process has used so far, user and system.
func processCPU() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// startSink runs a loadgen.Sink in a child process until b ends.
func startSink(b *testing.B) *loadgen.SinkChild {
	b.Helper()
	sink, err := loadgen.StartSinkInChild("TestReactorSinkProcess")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sink.Kill)
	return sink
}

// TestReactorSinkProcess is the sink's process of the reactor benchmarks;
// on its own it does nothing.
func TestReactorSinkProcess(t *testing.T) { loadgen.ServeSinkChild(t) }

// waitSink waits until the sink has seen n requests of run.
func waitSink(b *testing.B, sink *loadgen.SinkChild, run string, n int) loadgen.SinkStats {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st, err := sink.Stats(run)
		if err != nil {
			b.Fatal(err)
		}
		if st.Requests >= n {
			return st
		}
		if time.Now().After(deadline) {
			b.Fatalf("the sink saw %d of %d requests of %s in 5 minutes", st.Requests, n, run)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// preloadKeyed stores n OrderPaid events in the stream, the i-th on the
// key k-(i mod keys), as CloudEvents batches of 100 from 4 clients, and
// waits until they are readable.
func preloadKeyed(b *testing.B, url string, n, keys int) {
	b.Helper()
	client := &http.Client{Timeout: time.Minute}
	deadline := time.Now().Add(time.Minute)
	for { // until the controller has applied the stream
		resp, err := client.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("GET %s does not answer 200 a minute on", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
	batches := make(chan int)
	var wg sync.WaitGroup
	var failed error
	var once sync.Once
	for range 4 {
		wg.Go(func() {
			for first := range batches {
				var body bytes.Buffer
				body.WriteByte('[')
				for i := first; i < min(first+100, n); i++ {
					if i > first {
						body.WriteByte(',')
					}
					fmt.Fprintf(&body, `{"specversion":"1.0","id":"order-%d","source":"/bench","type":"OrderPaid",`+
						`"partitionkey":"k-%d","datacontenttype":"application/json","data":%s}`, i, i%keys, reactorPayload)
				}
				body.WriteByte(']')
				for {
					status, err := loadgen.Post(client, url, "application/cloudevents-batch+json", body.Bytes())
					if err == nil && status == http.StatusAccepted {
						break
					}
					if err == nil && status != http.StatusServiceUnavailable {
						err = fmt.Errorf("preload: status %d", status)
					}
					if err != nil {
						once.Do(func() { failed = err })
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	for first := 0; first < n; first += 100 {
		batches <- first
	}
	close(batches)
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
	for lastSequence(b, client, url) < uint64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("the %d preloaded events are not readable a minute on", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apply runs kubectl apply in ns with manifests on its standard input.
func (e *env) apply(b *testing.B, ns, manifests string) {
	b.Helper()
	cmd := exec.Command(e.kubectl, "--kubeconfig", e.kubeconfig, "apply", "-n", ns, "-f", "-")
	cmd.Stdin = strings.NewReader(manifests)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("kubectl apply: %v\n%s\n%s", err, out, manifests)
	}
}

func streamYAML(name string) string {
	return fmt.Sprintf(`apiVersion: eventsourcing.dev/v1alpha1
kind: Stream
metadata:
  name: %s
spec:
  contentTypes: [application/json]
  defaultEventName: OrderPaid
`, name)
}

// reactorYAML is a KeyOrdered Reactor with 16 in flight from the beginning
// of stream to sinkURI, its replies into reply (none when empty).
func reactorYAML(name, stream, sinkURI, reply, timeout string) string {
	y := fmt.Sprintf(`apiVersion: eventsourcing.dev/v1alpha1
kind: Reactor
metadata:
  name: %s
spec:
  streams: [%s]
  startFrom: Beginning
  sink:
    uri: %s
  delivery:
    ordering: KeyOrdered
    maxInFlight: 16
    timeout: %s
`, name, stream, sinkURI, timeout)
	if reply != "" {
		y += "  reply:\n    stream: " + reply + "\n"
	}
	return y
}

// jsonNumber reads a JSON number answer, as a key query of a Count gives.
func jsonNumber(b *testing.B, client *http.Client, url string) float64 {
	b.Helper()
	resp, err := client.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == http.StatusNotFound {
		return 0
	}
	var n float64
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil {
		b.Fatalf("GET %s: %v", url, err)
	}
	return n
}

// stalledRounds is how many pairs of turns BenchmarkManagerReactorStalledSink
// measures, each turn stalledTurn of load.
const (
	stalledRounds = 6
	stalledTurn   = 2 * time.Second
)

// BenchmarkManagerReactorStalledSink shows that a Reactor whose sink never
// answers slows nothing else: two managers run side by side with the quick
// start's stream and projections, one of them also with a Reactor on that
// stream whose sink (in a process of its own) takes every request and never
// answers (KeyOrdered, 16 in flight, 1 s timeout, retried, then
// dead-lettered). They take 2 s of load from 64 clients, each appending to
// a key of its own, in turn, the order swapped every pair; after each turn
// the Count projection must reach every accepted event. It reports ingest
// events/s and the projection's drain (from the end of the load to the
// count taking in its last event) for both, the ratios pair by pair, and
// how many requests the stalled sink took. Memory and disk storage;
// -benchtime 1x.
func BenchmarkManagerReactorStalledSink(b *testing.B) {
	for _, storage := range []string{"memory", "disk"} {
		b.Run("storage="+storage, func(b *testing.B) {
			for range b.N {
				benchStalledSink(b, storage)
			}
		})
	}
}

func benchStalledSink(b *testing.B, storage string) {
	e := setup(b)
	sink := startSink(b)
	type side struct {
		m             *manager
		url, countURL string
		rates, drains []float64
	}
	sides := map[string]*side{}
	for _, name := range []string{"plain", "stalled"} {
		ns := fmt.Sprintf("perf-%s-%d", name, time.Now().UnixNano())
		e.applySamples(b, ns)
		var flags []string
		if name == "stalled" {
			flags = []string{"--allow-private-sinks"}
			e.apply(b, ns, reactorYAML("never-answers", benchStream, "http://"+sink.Addr+"/hang/stalled", "", "1s"))
		}
		m := e.startManager(b, storage, b.TempDir(), flags...)
		waitStream(b, m, ns)
		sides[name] = &side{
			m: m, url: m.api + "/v1/namespaces/" + ns + "/streams/" + benchStream + "/events",
			countURL: m.api + "/v1/namespaces/" + ns + "/projections/item-count/keys/ItemCreated",
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	turns := 0
	turn := func(name string) {
		s := sides[name]
		before := jsonNumber(b, client, s.countURL)
		turns++
		res := runLoad(b, loadgen.Spec{PostURL: s.url, Clients: 64, Duration: stalledTurn, KeyPrefix: fmt.Sprintf("turn-%d", turns)})
		stopped := time.Now()
		want := before + float64(res.Accepted)
		for jsonNumber(b, client, s.countURL) < want {
			if time.Since(stopped) > 2*time.Minute {
				b.Fatalf("%s: the projection did not reach %v events in 2 minutes", name, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
		s.rates = append(s.rates, res.Rate())
		s.drains = append(s.drains, float64(time.Since(stopped).Milliseconds()))
	}
	for i := range stalledRounds {
		if i%2 == 0 {
			turn("plain")
			turn("stalled")
		} else {
			turn("stalled")
			turn("plain")
		}
	}
	plain, stalled := sides["plain"], sides["stalled"]
	r := ratios(stalled.rates, plain.rates)
	b.ReportMetric(median(plain.rates), "plain-events/s")
	b.ReportMetric(median(stalled.rates), "beside-stalled-events/s")
	b.ReportMetric(100*median(r), "beside-stalled/plain-%")
	b.ReportMetric(100*slices.Min(r), "lowest-%")
	b.ReportMetric(median(plain.drains), "plain-drain-ms")
	b.ReportMetric(median(stalled.drains), "beside-stalled-drain-ms")
	st, err := sink.Stats("stalled")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Requests), "stalled-sink-requests")
	if st.Requests == 0 {
		b.Error("the stalled sink took no request: the reactor beside the projection did not run")
	}
}
