package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/disk"
)

// pendingAfterCrash is how many accepted events the outbox log holds when
// the manager restarts in BenchmarkManagerRestartWithFullOutbox.
const pendingAfterCrash = 1_000_000

// fillOutbox leaves n accepted, undispatched events of stream in the data
// directory dir: what a manager killed before its processor moved them
// leaves behind. The engine takes them as the manager would (Ingest), but
// never runs, so nothing dispatches them.
func fillOutbox(b *testing.B, dir, stream string, n int) {
	b.Helper()
	st, err := disk.Open(dir, disk.Options{OutboxCapacity: 2 * n})
	if err != nil {
		b.Fatal(err)
	}
	e, err := core.New(core.Config{Store: st.Store, Outbox: st.Outbox, ReadModels: st.ReadModels})
	if err == nil {
		err = e.ApplyStream(core.StreamSpec{Name: stream, DefaultEventName: "ItemCreated"})
	}
	if err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	events := make([]core.Event, batch)
	for i := 0; i < n; i += batch {
		for j := range events {
			events[j] = core.Event{Payload: fmt.Appendf(nil, `{"foo":"crash","n":%d}`, i+j), ContentType: "application/json"}
		}
		if _, err := e.Ingest(context.Background(), stream, events[:min(batch, n-i)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkManagerRestartWithFullOutbox starts the manager on a data
// directory whose outbox log holds a million accepted events (as a SIGKILL
// leaves it when the processor was behind): ready-s is the time to /readyz,
// replayed-s the time until every one of them is readable. -benchtime 1x.
func BenchmarkManagerRestartWithFullOutbox(b *testing.B) {
	e := setup(b)
	for range b.N {
		b.StopTimer()
		ns := fmt.Sprintf("perf-%d", time.Now().UnixNano())
		dir := b.TempDir()
		fillOutbox(b, dir, ns+"/"+benchStream, pendingAfterCrash)
		e.applySamples(b, ns)
		b.StartTimer()
		start := time.Now()
		m := e.startManager(b, "disk", dir)
		ready := time.Since(start)
		url := fmt.Sprintf("%s/v1/namespaces/%s/streams/%s/events?after=%d&limit=1", m.api, ns, benchStream, pendingAfterCrash-1)
		client := &http.Client{Timeout: 10 * time.Second}
		for {
			if n := countEvents(b, client, url); n == 1 {
				break
			}
			select {
			case <-m.exited:
				b.Fatalf("the manager exited while replaying (log: %s)", m.log)
			default:
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("the %d accepted events are not all readable 10 minutes after the restart", pendingAfterCrash)
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.ReportMetric(ready.Seconds(), "ready-s")
		b.ReportMetric(time.Since(start).Seconds(), "replayed-s")
	}
}

// countEvents is how many events a stream read returns (0 while the
// stream is unknown).
func countEvents(b *testing.B, client *http.Client, url string) int {
	b.Helper()
	resp, err := client.Get(url)
	if err != nil {
		b.Logf("%v", err)
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0
	}
	var page struct {
		Events []struct{} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		b.Fatal(err)
	}
	return len(page.Events)
}
