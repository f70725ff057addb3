package core_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/disk"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

// pickySink answers 400 to the events with ids e2 and e4 while broken is
// set, and 200 otherwise.
func pickySink(t *testing.T, broken *atomic.Bool) *recordingSink {
	t.Helper()
	return newSink(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if broken.Load() && (r.Header.Get("Ce-Id") == "e2" || r.Header.Get("Ce-Id") == "e4") {
			http.Error(w, "cannot take it", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// redriveReactorSetup runs reactor shop/ship (KeyOrdered) over shop/orders
// to a sink that refuses bad events while broken is set, beside reactor
// shop/audit over the same stream to a sink that takes everything. It
// ingests e1..e4 and waits until e2 and e4 are
// dead letters.
func redriveReactorSetup(t *testing.T, broken *atomic.Bool) (e *core.Engine, ship, audit *recordingSink) {
	t.Helper()
	e = reactorEngine(t)
	ship, audit = pickySink(t, broken), newSink(t, ok)
	mustApplyReactor(t, e, core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: ship.URL, Pipeline: fastRetry(t, e, 3),
	})
	mustApplyReactor(t, e, core.ReactorSpec{Name: "shop/audit", Streams: []string{"shop/orders"}, SinkURL: audit.URL})
	events := make([]core.Event, 4)
	for i := range events {
		n := i + 1
		events[i] = core.Event{
			ID: fmt.Sprintf("e%d", n), Key: fmt.Sprintf("k%d", n), ContentType: "application/json",
			Payload: fmt.Appendf(nil, `{"n":%d}`, n),
		}
	}
	ingestShopOrders(t, e, events...)
	waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.DeadLettered == 2 && st.Checkpoint["shop/orders"] == 4 })
	waitReactor(t, e, "shop/audit", func(st core.ReactorStats) bool { return st.Delivered == 4 })
	// The counter counts a dead letter once it is accepted; a redrive
	// finds it once the processor has stored it in the dead-letter stream.
	enginetest.Eventually(t, "2 stored dead letters", func() bool { return len(readAll(t, e, "dead")) == 2 })
	return e, ship, audit
}

func redriveReactor(t *testing.T, e *core.Engine, ids []string, want int) {
	t.Helper()
	n, err := e.RedriveReactor(context.Background(), "shop/ship", ids)
	if err != nil || n != want {
		t.Fatalf("RedriveReactor(shop/ship, %v) = %d, %v; want %d redriven", ids, n, err, want)
	}
}

// ceIDs are the CloudEvents ids of the deliveries, in the order the sink
// got them.
func ceIDs(ds []delivery) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.header.Get("Ce-Id")
	}
	return ids
}

// A reactor's dead letters are delivered to its sink again by a redrive once
// the sink takes them, to that reactor alone; a second redrive finds none.
func TestReactorRedriveDeliversDeadLettersToTheReactorAlone(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	e, ship, audit := redriveReactorSetup(t, &broken)
	broken.Store(false)

	redriveReactor(t, e, nil, 2)
	got := ceIDs(ship.waitFor(t, 6)[4:])
	slices.Sort(got)
	if !slices.Equal(got, []string{"e2", "e4"}) {
		t.Fatalf("redelivered %v, want e2 and e4", got)
	}
	st := waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.Delivered == 4 && st.InFlight == 0 })
	if st.DeadLettered != 2 || st.Checkpoint["shop/orders"] != 4 {
		t.Fatalf("after the redrive: %+v; want no new dead letter and the checkpoint at 4", st)
	}
	redriveReactor(t, e, nil, 0)
	if n := len(audit.deliveries()); n != 4 {
		t.Fatalf("the other reactor of the stream got %d requests, want its 4", n)
	}
	if n := len(readAll(t, e, "dead")); n != 2 {
		t.Fatalf("%d dead letters, want the 2 first ones", n)
	}
	// Live events go on as before.
	ingestShopOrders(t, e, core.Event{ID: "e5", ContentType: "application/json", Payload: []byte(`{"n":5}`)})
	if got := ceIDs(ship.waitFor(t, 7)); got[6] != "e5" {
		t.Fatalf("deliveries %v, want e5 last", got)
	}
}

// With ids only those dead letters are redriven; the rest stay for a
// later redrive without ids.
func TestReactorRedriveByIDsRedrivesOnlyThoseEvents(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	e, ship, _ := redriveReactorSetup(t, &broken)
	broken.Store(false)

	redriveReactor(t, e, []string{"e4", "no-such-event"}, 1)
	if got := ceIDs(ship.waitFor(t, 5)); got[4] != "e4" {
		t.Fatalf("deliveries %v, want e4 redelivered", got)
	}
	redriveReactor(t, e, []string{"e4"}, 0)
	redriveReactor(t, e, nil, 1)
	if got := ceIDs(ship.waitFor(t, 6)); got[5] != "e2" {
		t.Fatalf("deliveries %v, want e2 redelivered", got)
	}
	redriveReactor(t, e, nil, 0)
	waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.InFlight == 0 })
	if n := len(ship.deliveries()); n != 6 {
		t.Fatalf("%d requests, want 6: each dead letter redelivered once", n)
	}
}

// A redriven event that fails again is dead-lettered again with an id of its
// own and x-dead-letter-redrives, and a later redrive picks it up.
func TestReactorRedriveThatFailsAgainIsDeadLetteredAgain(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	e, _, _ := redriveReactorSetup(t, &broken)
	first := readAll(t, e, "dead")

	redriveReactor(t, e, []string{"e2"}, 1) // the sink still refuses it
	var dead []engine.Message
	enginetest.Eventually(t, "a third dead letter", func() bool { dead = readAll(t, e, "dead"); return len(dead) == 3 })
	again := dead[2]
	if again.Header(engine.HeaderDeadLetterEventID) != "e2" || again.Header(engine.HeaderDeadLetterRedrives) != "1" ||
		again.Header(engine.HeaderDeadLetterHandler) != core.ReactorHandlerName("shop/ship") ||
		again.ID == first[0].ID || again.ID == first[1].ID {
		t.Fatalf("dead letter of the failed redrive: id %s, headers %v; want a new id for e2 with %s: 1",
			again.ID, again.Headers, engine.HeaderDeadLetterRedrives)
	}
	waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.DeadLettered == 3 && st.InFlight == 0 })

	broken.Store(false)
	redriveReactor(t, e, nil, 2) // e4, and e2's second dead letter
	waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.Delivered == 4 && st.InFlight == 0 })
	redriveReactor(t, e, nil, 0)
}

func TestReactorRedriveOfAnUnknownOrWaitingReactor(t *testing.T) {
	e := reactorEngine(t)
	if _, err := e.RedriveReactor(context.Background(), "shop/nope", nil); !errors.Is(err, core.ErrReactorNotFound) {
		t.Fatalf("unknown reactor: err = %v, want ErrReactorNotFound", err)
	}
	err := e.ApplyReactor(context.Background(), core.ReactorSpec{
		Name: "shop/later", Streams: []string{"shop/not-yet"}, SinkURL: "http://127.0.0.1:1",
	})
	if !errors.Is(err, core.ErrStreamNotFound) {
		t.Fatalf("ApplyReactor over a missing stream: %v", err)
	}
	if _, err := e.RedriveReactor(context.Background(), "shop/later", nil); !errors.Is(err, core.ErrNotRunning) {
		t.Fatalf("waiting reactor: err = %v, want ErrNotRunning", err)
	}
}

// The record of a reactor's redrive is durable: after a restart on the same
// data directory, a redrive finds nothing left and the sink got the
// dead-lettered event twice in all (the refusal and the redrive).
func TestReactorRedriveRecordSurvivesARestartOnDisk(t *testing.T) {
	dir := t.TempDir()
	var broken atomic.Bool
	broken.Store(true)
	sink := pickySink(t, &broken)
	run := func(steps func(e *core.Engine)) {
		st, err := disk.Open(dir, disk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e := newEngine(t, core.Config{Store: st.Store, Outbox: st.Outbox, ReadModels: st.ReadModels, AllowPrivateSinks: true})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		mustApplyStream(t, e, core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPaid"})
		mustApplyReactor(t, e, core.ReactorSpec{
			Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL, StartFrom: projection.Beginning,
		})
		steps(e)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := errors.Join(e.Close(), st.Close()); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	run(func(e *core.Engine) {
		ingestShopOrders(t, e, core.Event{ID: "e1", Payload: []byte(`{}`)}, core.Event{ID: "e2", Payload: []byte(`{}`)})
		waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.DeadLettered == 1 && st.Checkpoint["shop/orders"] == 2 })
	})
	broken.Store(false)
	run(func(e *core.Engine) {
		redriveReactor(t, e, nil, 1)
		waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.Delivered == 1 && st.InFlight == 0 })
	})
	run(func(e *core.Engine) {
		redriveReactor(t, e, nil, 0)
	})
	if got := ceIDs(sink.deliveries()); fmt.Sprint(got) != "[e1 e2 e2]" {
		t.Fatalf("the sink got %v, want [e1 e2 e2]", got)
	}
}

// Reactor redrives run side by side; the reactor hands each dead letter to
// its sink once however many ask for it.
func TestConcurrentReactorRedrivesHandEachDeadLetterOnce(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	e, ship, _ := redriveReactorSetup(t, &broken)
	broken.Store(false)

	const callers = 8
	counts := make(chan int, callers)
	for range callers {
		go func() {
			n, err := e.RedriveReactor(context.Background(), "shop/ship", nil)
			if err != nil {
				t.Errorf("RedriveReactor: %v", err)
			}
			counts <- n
		}()
	}
	total := 0
	for range callers {
		total += <-counts
	}
	if total != 2 {
		t.Fatalf("%d concurrent redrives handed %d dead letters in all, want 2", callers, total)
	}
	waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.Delivered == 4 && st.InFlight == 0 })
	if n := len(ship.deliveries()); n != 6 {
		t.Fatalf("the sink got %d requests, want 6: each dead letter redelivered once", n)
	}
}
