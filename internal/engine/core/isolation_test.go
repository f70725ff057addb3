package core_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// heldReadModels holds every Apply of one projection while held, as a
// handler whose sink is down would hold its events.
type heldReadModels struct {
	*readmodel.Memory
	projection string

	mu      sync.Mutex
	gate    chan struct{} // nil when not held; closed to let go
	waiting chan struct{} // closed when an Apply waits on gate
}

func (m *heldReadModels) hold() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gate, m.waiting = make(chan struct{}), make(chan struct{})
}

func (m *heldReadModels) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gate != nil {
		close(m.gate)
		m.gate = nil
	}
}

func (m *heldReadModels) Apply(ctx context.Context, projection string, changes []readmodel.Change, cp readmodel.Checkpoint) error {
	if projection == m.projection {
		m.mu.Lock()
		gate, waiting := m.gate, m.waiting
		m.mu.Unlock()
		if gate != nil {
			select {
			case <-waiting:
			default:
				close(waiting)
			}
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return m.Memory.Apply(ctx, projection, changes, cp)
}

// A projection that cannot apply holds up neither ingest, nor its stream,
// nor another stream, nor another projection; once it can apply again it
// catches up from the store with every event once, in order.
func TestStuckProjectionHoldsUpNeitherIngestNorOtherProjections(t *testing.T) {
	const n = 300
	models := &heldReadModels{Memory: readmodel.NewMemory(), projection: "stuck"}
	t.Cleanup(models.release)
	e := startEngine(t, core.Config{ReadModels: models})
	for _, s := range []string{"orders", "users"} {
		mustApplyStream(t, e, core.StreamSpec{Name: s, DefaultEventName: "E", BacklogLimit: 4})
	}
	mustApplyProjection(t, e, appendProjection("stuck", "orders"))
	mustApplyProjection(t, e, appendProjection("free", "orders", "users"))

	models.hold()
	ingestJSON(t, e, "orders", "0")
	select {
	case <-models.waiting:
	case <-time.After(enginetest.Timeout):
		t.Fatalf("the stuck projection did not try to apply event 0 within %s", enginetest.Timeout)
	}
	for i := 1; i < n; i++ {
		ingestJSON(t, e, "orders", strconv.Itoa(i))
		ingestJSON(t, e, "users", strconv.Itoa(i))
	}

	// Far more than the stuck projection's queue of 4 is stored and
	// applied by the other projection.
	waitProcessed(t, e, "free", 2*n-1)
	for stream, want := range map[string]uint64{"orders": n, "users": n - 1} {
		st, err := e.StreamStats(context.Background(), stream)
		if err != nil {
			t.Fatal(err)
		}
		if st.LastSequence != want {
			t.Errorf("stream %s holds %d events, want %d", stream, st.LastSequence, want)
		}
	}
	if st, err := e.ProjectionStats(context.Background(), "stuck"); err != nil || st.Processed != 0 {
		t.Fatalf("stuck projection stats %+v, %v: want nothing processed while it cannot apply", st, err)
	}

	models.release()
	waitProcessed(t, e, "stuck", n)
	items := query(t, e, "stuck")["items"].([]any)
	if len(items) != n {
		t.Fatalf("stuck projection holds %d items, want %d", len(items), n)
	}
	for i, v := range items {
		if v != float64(i) && v != int64(i) {
			t.Fatalf("items[%d] = %v, want %d (every event once, in order)", i, v, i)
		}
	}
	ingestJSON(t, e, "orders", strconv.Itoa(n))
	waitProcessed(t, e, "stuck", n+1)
}
