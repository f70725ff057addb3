package reactor

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
)

// A redriven event takes its key's lane after the events the lane holds and
// before those accepted later; it runs with the redrive in its context,
// leaves the checkpoint to the live events, and is recorded once done.
func TestRedeliverJoinsItsKeysLaneBehindTheEventsItHolds(t *testing.T) {
	g := newGate()
	var redriven atomic.Int32
	h := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		if rd, ok := engine.RedriveOf(ctx); ok && rd.Generation == 1 && msg.Sequence == 1 {
			redriven.Add(1)
		}
		return g.Handle(ctx, msg)
	})
	r, store := newTestReactor(t, KeyOrdered, 16, h)
	accept(t, r, ev(1, "a"))
	g.release(1) // done: as if dead-lettered
	enginetest.Eventually(t, "event 1 done", func() bool { return g.finished.Load() == 1 })

	accept(t, r, ev(2, "a"), ev(3, "a"))
	var recorded atomic.Int32
	rd := engine.Redrive{Generation: 1, Mark: "m1", Seq: 7}
	done := func(context.Context) error { recorded.Add(1); return nil }
	if handed, err := r.Redeliver(context.Background(), ev(1, "a"), rd, done); !handed || err != nil {
		t.Fatalf("Redeliver = %v, %v; want it handed", handed, err)
	}
	if handed, err := r.Redeliver(context.Background(), ev(1, "a"), rd, done); handed || err != nil {
		t.Fatalf("second Redeliver of the same mark = %v, %v; want it refused", handed, err)
	}
	accept(t, r, ev(4, "a"))
	g.release(2, 3, 4)
	enginetest.Eventually(t, "all done and stored", func() bool {
		return g.finished.Load() == 5 && recorded.Load() == 1 && storedCheckpoint(t, store) == 4
	})
	g.mu.Lock()
	order := fmt.Sprint(g.order)
	g.mu.Unlock()
	if order != "[1 2 3 1 4]" || redriven.Load() != 1 {
		t.Fatalf("delivered %s with %d redrives, want [1 2 3 1 4] with the second 1 a redrive", order, redriven.Load())
	}
	if st := r.Stats(); st.InFlight != 0 || st.Checkpoint["s"] != 4 {
		t.Fatalf("stats %+v, want nothing in flight and the checkpoint at 4", st)
	}
}

// A redrive whose record cannot be written yet holds its lane until it is,
// so the lane's next event waits and the record is not lost.
func TestRedeliverRetriesItsRecordUntilItIsWritten(t *testing.T) {
	var calls, callsBeforeNext atomic.Int32
	h := engine.HandlerFunc(func(_ context.Context, msg engine.Message) ([]engine.Message, error) {
		if msg.Sequence == 2 {
			callsBeforeNext.Store(calls.Load())
		}
		return nil, nil
	})
	r, _ := newTestReactor(t, KeyOrdered, 16, h)
	done := func(context.Context) error {
		if calls.Add(1) < 3 {
			return errors.New("store down")
		}
		return nil
	}
	if _, err := r.Redeliver(context.Background(), ev(1, "a"), engine.Redrive{Generation: 1, Mark: "m"}, done); err != nil {
		t.Fatal(err)
	}
	accept(t, r, ev(2, "a"))
	enginetest.Eventually(t, "event 2 done", func() bool { return r.Stats().Checkpoint["s"] == 2 })
	if n := callsBeforeNext.Load(); n != 3 {
		t.Fatalf("event 2 ran after %d attempts at the record, want 3 (the record written first)", n)
	}
}
