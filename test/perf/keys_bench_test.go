package perf

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/test/loadgen"
)

// appendMode is one way the clients append in BenchmarkManagerConditionalAppends.
type appendMode struct {
	name    string
	keyed   bool // each client on its own key
	ifMatch bool // with If-Match at the version its last 202 gave
}

var (
	unkeyed     = appendMode{name: "unkeyed"}
	keyed       = appendMode{name: "keyed", keyed: true}
	conditional = appendMode{name: "if-match", keyed: true, ifMatch: true}
	appendModes = []appendMode{unkeyed, keyed, conditional}
)

const (
	// conditionalRounds is how many rounds BenchmarkManagerConditionalAppends
	// measures, and conditionalTurn each of its turns of load.
	conditionalRounds = 8
	conditionalTurn   = time.Second
)

// modeFigures adds up one storage and mode's turns of a round.
type modeFigures struct {
	accepted int
	elapsed  time.Duration
	cpu      time.Duration // the manager's
	noCPU    bool          // /proc could not tell cpu
	p50s     []time.Duration
}

func (f modeFigures) rate() float64 { return float64(f.accepted) / f.elapsed.Seconds() }

// cpuPerEvent is the manager's CPU time per accepted event, in µs; NaN
// where /proc could not tell.
func (f modeFigures) cpuPerEvent() float64 {
	if f.noCPU {
		return math.NaN()
	}
	return float64(f.cpu.Microseconds()) / float64(f.accepted)
}

// BenchmarkManagerConditionalAppends is what optimistic concurrency costs
// on the write path: 64 clients in another process, single events, posting
// to the stream (unkeyed), each to a key of its own (keyed), and each to
// its key with If-Match at the version its last 202 gave (if-match), on a
// memory and a disk manager running side by side.
//
// A round gives each storage its modes in turns of 1 s in a palindrome
// (A B C C B A: a machine that speeds up or slows down during the round
// weighs on every mode alike), the first mode rotating and the storages
// swapping from round to round; each turn of a keyed mode uses keys of its
// own, which start empty. Ratios are taken round by round. It reports the
// medians of events/s, of the manager's CPU µs per event (from /proc: on a
// shared machine a steadier measure of cost than a rate) and of the
// turns' p50 latencies, and per storage the median of the rounds'
// if-match/keyed (with the lowest and highest), keyed/unkeyed and
// if-match/unkeyed; each round's figures are logged. A 412 (none is
// possible with one client per key) fails the benchmark. -benchtime 1x.
func BenchmarkManagerConditionalAppends(b *testing.B) {
	storages := []string{"memory", "disk"}
	for range b.N {
		managers, urls := map[string]*manager{}, map[string]string{}
		for _, storage := range storages {
			managers[storage], urls[storage], _ = startBenchManagerProcess(b, storage)
		}
		rounds := map[string]map[appendMode][]modeFigures{}
		for _, storage := range storages {
			rounds[storage] = map[appendMode][]modeFigures{}
		}
		conflicts, turn := 0, 0
		for round := range conditionalRounds {
			order := slices.Clone(storages)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			modes := append(slices.Clone(appendModes[round%3:]), appendModes[:round%3]...)
			modes = append(modes, reversed(modes)...)
			var line strings.Builder
			fmt.Fprintf(&line, "round %d:", round+1)
			for _, storage := range order {
				figures := map[appendMode]modeFigures{}
				m := managers[storage]
				for _, mode := range modes {
					turn++
					spec := loadgen.Spec{PostURL: urls[storage], Clients: 64, Duration: conditionalTurn}
					if mode.keyed {
						spec.KeyPrefix, spec.IfMatch = fmt.Sprintf("turn-%d", turn), mode.ifMatch
					}
					cpuBefore, ok1 := m.cpuTime()
					res := runLoad(b, spec)
					cpuAfter, ok2 := m.cpuTime()
					conflicts += res.Conflicts
					f := figures[mode]
					f.accepted += res.Accepted
					f.elapsed += res.Elapsed
					f.cpu += cpuAfter - cpuBefore
					f.noCPU = f.noCPU || !ok1 || !ok2
					f.p50s = append(f.p50s, res.P50)
					figures[mode] = f
				}
				for _, mode := range appendModes {
					f := figures[mode]
					rounds[storage][mode] = append(rounds[storage][mode], f)
					fmt.Fprintf(&line, " %s %s %.0f/s %.0fµs-cpu;", storage, mode.name, f.rate(), f.cpuPerEvent())
				}
			}
			b.Log(line.String())
		}
		for _, storage := range storages {
			r := rounds[storage]
			for _, mode := range appendModes {
				b.ReportMetric(median(each(r[mode], modeFigures.rate)), storage+"-"+mode.name+"-events/s")
				b.ReportMetric(median(each(r[mode], modeFigures.cpuPerEvent)), storage+"-"+mode.name+"-cpu-µs/event")
				var p50s []float64
				for _, f := range r[mode] {
					for _, p := range f.p50s {
						p50s = append(p50s, float64(p.Microseconds()))
					}
				}
				b.ReportMetric(median(p50s), storage+"-"+mode.name+"-p50-µs")
			}
			rate := func(m appendMode) []float64 { return each(r[m], modeFigures.rate) }
			conditionalRatios := ratios(rate(conditional), rate(keyed))
			b.ReportMetric(100*median(conditionalRatios), storage+"-if-match/keyed-%")
			b.ReportMetric(100*slices.Min(conditionalRatios), storage+"-if-match/keyed-lowest-%")
			b.ReportMetric(100*slices.Max(conditionalRatios), storage+"-if-match/keyed-highest-%")
			b.ReportMetric(100*median(ratios(rate(keyed), rate(unkeyed))), storage+"-keyed/unkeyed-%")
			b.ReportMetric(100*median(ratios(rate(conditional), rate(unkeyed))), storage+"-if-match/unkeyed-%")
		}
		b.ReportMetric(float64(conflicts), "412s")
		if conflicts > 0 {
			b.Errorf("%d appends were answered 412 although each key had one writer", conflicts)
		}
	}
}

func reversed[T any](s []T) []T {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func each(figures []modeFigures, f func(modeFigures) float64) []float64 {
	out := make([]float64, len(figures))
	for i, x := range figures {
		out[i] = f(x)
	}
	return out
}

// ratios divides a by b round by round.
func ratios(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] / b[i]
	}
	return out
}
