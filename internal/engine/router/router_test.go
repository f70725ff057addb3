package router_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/router"
)

func TestNewRequiresBrokerStoreAndOutbox(t *testing.T) {
	full := router.Config{Broker: broker.NewMemory(), Store: eventstore.NewMemory(), Outbox: outbox.NewMemory(1)}
	tests := []struct {
		name    string
		edit    func(*router.Config)
		wantErr bool
	}{
		{name: "complete", edit: func(*router.Config) {}},
		{name: "no broker", edit: func(c *router.Config) { c.Broker = nil }, wantErr: true},
		{name: "no store", edit: func(c *router.Config) { c.Store = nil }, wantErr: true},
		{name: "no outbox", edit: func(c *router.Config) { c.Outbox = nil }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := full
			tt.edit(&cfg)
			_, err := router.New(cfg)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("New: got error %v, want error %t", err, tt.wantErr)
			}
		})
	}
}

func TestAddValidatesRoute(t *testing.T) {
	handler := newRecorder()
	tests := []struct {
		name    string
		route   router.Route
		wantErr bool
	}{
		{name: "valid", route: router.Route{Name: "p", Streams: []string{"a"}, Handler: handler}},
		{name: "no name", route: router.Route{Streams: []string{"a"}, Handler: handler}, wantErr: true},
		{name: "no stream", route: router.Route{Name: "p", Handler: handler}, wantErr: true},
		{name: "empty stream list", route: router.Route{Name: "p", Streams: []string{}, Handler: handler}, wantErr: true},
		{name: "no handler", route: router.Route{Name: "p", Streams: []string{"a"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			err := h.router.Add(tt.route)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Add: got error %v, want error %t", err, tt.wantErr)
			}
			wantNames := []string{}
			if !tt.wantErr {
				wantNames = []string{tt.route.Name}
			}
			if got := h.router.Names(); !slices.Equal(got, wantNames) {
				t.Errorf("Names() = %q, want %q", got, wantNames)
			}
		})
	}
}

// A stream listed twice gets two consumers, so the handler sees each of its
// events twice; Add should refuse (or collapse) the duplicate.
func TestAddRejectsAStreamListedTwice(t *testing.T) {
	h := newHarness(t, nil)
	err := h.router.Add(router.Route{Name: "p", Streams: []string{"a", "b", "a"}, Handler: newRecorder()})
	if err == nil {
		t.Errorf("Add with stream %q listed twice: got nil error, want one", "a")
	}
}

func TestRunTwiceIsAnError(t *testing.T) {
	h := newHarness(t, nil)
	rec := newRecorder()
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: rec, Start: fromStart})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.router.Run(ctx) }()
	// The route's consumer subscribes once Run has started it.
	enginetest.Eventually(t, "the route to subscribe", func() bool { return h.broker.Subscribers("a") == 1 })

	if err := h.router.Run(context.Background()); err == nil {
		t.Error("second Run while the first runs: got nil error, want one")
	}
	h.emit(t, "a", 1)
	enginetest.Eventually(t, "the first Run to keep delivering", func() bool { return rec.count("a") == 1 })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("first Run returned %v, want nil", err)
		}
	case <-time.After(enginetest.Timeout):
		t.Fatal("first Run did not return after its context ended")
	}
	if got := h.broker.Subscribers("a"); got != 0 {
		t.Errorf("after Run returned stream a has %d subscribers, want 0", got)
	}
	if err := h.router.Run(context.Background()); err == nil {
		t.Error("Run after Run returned: got nil error, want one")
	}
	if err := h.router.Add(router.Route{Name: "q", Streams: []string{"a"}, Handler: rec}); err == nil {
		t.Error("Add after Run returned: got nil error, want one")
	}
}

func TestRoutesAddedBeforeRunStartWhenRunStarts(t *testing.T) {
	h := newHarness(t, nil)
	rec := newRecorder()
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: rec, Start: fromStart})
	h.emit(t, "a", 2)
	if got := h.broker.Subscribers("a"); got != 0 {
		t.Errorf("before Run stream a has %d subscribers, want 0", got)
	}

	h.run(t)
	enginetest.Eventually(t, "both events", func() bool { return rec.count("a") == 2 })
	checkSeqs(t, "stream a", rec.seqs("a"), seqRange(1, 2))
}

func TestStatsReportsProgressPerStream(t *testing.T) {
	h := running(t, nil)
	h.add(t, router.Route{Name: "p", Streams: []string{"a", "b"}, Handler: newRecorder(), Start: fromStart})
	h.emit(t, "a", 3)
	h.emit(t, "b", 1)
	// Events read from the store while the live queue still held them are
	// dropped from the queue after delivery: wait for both.
	enginetest.Eventually(t, "both streams delivered and their queues drained", func() bool {
		st, _ := h.router.Stats("p")
		return st.Streams["a"].Delivered == 3 && st.Streams["b"].Delivered == 1 &&
			st.Streams["a"].Queued == 0 && st.Streams["b"].Queued == 0
	})
	st, ok := h.router.Stats("p")
	if !ok || st.Name != "p" || len(st.Streams) != 2 {
		t.Errorf("Stats(p) = %+v, %t; want route p with 2 streams", st, ok)
	}
	for _, s := range []string{"a", "b"} {
		if got := st.Streams[s]; got.Err != "" || got.Queued != 0 {
			t.Errorf("stream %s stats = %+v, want no error and nothing queued", s, got)
		}
	}
	if _, ok := h.router.Stats("unknown"); ok {
		t.Error("Stats(unknown) reported a route, want none")
	}
}
