package perf

import (
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/test/loadgen"
)

const (
	// liveReaders follow the stream in BenchmarkManagerLiveFanout while
	// liveRate events per second are posted for liveDuration.
	liveReaders  = 20
	liveRate     = 2000
	liveDuration = 10 * time.Second
)

// BenchmarkManagerLiveFanout is live reads as users meet them: 20 readers
// follow the sample stream with Server-Sent Events (in a process of their
// own, reconnecting with Last-Event-ID if the server cuts them off) while
// 32 clients in another process post 2,000 events/s for 10 s (open loop).
// Each 202's event id and arrival time are matched with each reader's
// arrivals: it reports the lag from 202 to arrival over every reader and
// event (p50, p99, max), the fewest events a reader saw against those
// accepted, the reconnects, the achieved ingest rate, the manager's CPU
// while the events were posted and the readers' process's CPU in all. A
// reader that misses an event, or gets one twice or out of order, fails
// the benchmark. Memory and disk storage; -benchtime 1x.
func BenchmarkManagerLiveFanout(b *testing.B) {
	for _, storage := range []string{"memory", "disk"} {
		b.Run("storage="+storage, func(b *testing.B) {
			for range b.N {
				m, url, after := startBenchManagerProcess(b, storage)
				readers, err := loadgen.StartLiveInChild(loadgen.LiveSpec{URL: url, Readers: liveReaders, After: after}, "TestLiveReaderProcess")
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(readers.Kill)
				cpuBefore, cpuOK1 := m.cpuTime()
				res := runLoad(b, loadgen.Spec{PostURL: url, Clients: 32, Rate: liveRate, Duration: liveDuration, RecordAccepted: true})
				cpuAfter, cpuOK2 := m.cpuTime()
				live, err := readers.Finish(res.Events)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(res.Rate(), "events/s")
				b.ReportMetric(float64(live.P50.Microseconds())/1000, "live-p50-ms")
				b.ReportMetric(float64(live.P99.Microseconds())/1000, "live-p99-ms")
				b.ReportMetric(float64(live.Max.Microseconds())/1000, "live-max-ms")
				b.ReportMetric(float64(live.MinSeen()), "min-seen")
				b.ReportMetric(float64(len(res.Events)), "accepted")
				b.ReportMetric(float64(live.Reconnects), "reconnects")
				b.ReportMetric(float64(res.P99.Microseconds())/1000, "202-p99-ms")
				b.ReportMetric(live.CPU.Seconds(), "readers-cpu-s")
				if cpuOK1 && cpuOK2 {
					b.ReportMetric(100*(cpuAfter-cpuBefore).Seconds()/res.Elapsed.Seconds(), "manager-cpu-%")
				}
				if live.Err != "" || live.MinSeen() != len(res.Events) || live.Duplicates+live.OutOfOrder+live.Unknown != 0 {
					b.Errorf("live readers saw %v of %d accepted events (%d duplicates, %d out of order, %d unknown), error %q; "+
						"want every reader to see each once, in order",
						live.Seen, len(res.Events), live.Duplicates, live.OutOfOrder, live.Unknown, live.Err)
				}
				if len(live.Comments) > 0 {
					b.Logf("the server ended answers with: %q", live.Comments)
				}
			}
		})
	}
}

// TestLiveReaderProcess is the live readers' process of
// BenchmarkManagerLiveFanout; on its own it does nothing.
func TestLiveReaderProcess(t *testing.T) { loadgen.ServeLiveChild(t) }
