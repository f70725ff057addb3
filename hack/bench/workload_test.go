package bench

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds how long a benchmark waits for its consumer: a lost
// message must fail the run instead of hanging it until the test timeout.
const waitTimeout = 2 * time.Minute

// payload is the body of every event, the same bytes the engine benchmark
// (enginebench) publishes, so both sides decode the same JSON.
var payload = []byte(`{"foo":"a","n":1}`)

// appendProjection does the work of the engine's pipeline and Append
// projection: check that the payload is JSON (the engine's Deserialize,
// which builds no value when nothing reads it), then keep it in memory as
// JSON text, as the engine's read model does. It closes done once
// it has applied want events.
type appendProjection struct {
	mu   sync.Mutex
	rows []json.RawMessage
	want int
	done chan struct{}
}

func newAppendProjection(want int) *appendProjection {
	return &appendProjection{rows: make([]json.RawMessage, 0, want), want: want, done: make(chan struct{})}
}

func (p *appendProjection) apply(body []byte) error {
	if !json.Valid(body) {
		return fmt.Errorf("payload is not JSON: %q", body)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows = append(p.rows, json.RawMessage(body))
	if len(p.rows) == p.want {
		close(p.done)
	}
	return nil
}

func (p *appendProjection) applied() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rows)
}

// wait blocks until the projection has applied every event, failing the
// benchmark with the count reached if that takes longer than waitTimeout.
func (p *appendProjection) wait(b *testing.B) {
	b.Helper()
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		b.Fatalf("projection applied %d events after %v, want %d", p.applied(), waitTimeout, p.want)
	}
}

// reportEventsPerSecond reports b.N over the time since start as events/s.
func reportEventsPerSecond(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
