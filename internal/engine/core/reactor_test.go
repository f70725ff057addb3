package core_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/disk"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/middleware"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/reactor"
)

// delivery is one request a test sink received.
type delivery struct {
	header http.Header
	body   string
}

// recordingSink is an httptest server that records each request and
// answers with respond.
type recordingSink struct {
	*httptest.Server
	mu       sync.Mutex
	got      []delivery
	inFlight atomic.Int32
	maxSeen  atomic.Int32
}

func newSink(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int)) *recordingSink {
	t.Helper()
	s := &recordingSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for {
			seen := s.maxSeen.Load()
			if now <= seen || s.maxSeen.CompareAndSwap(seen, now) {
				break
			}
		}
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, delivery{header: r.Header.Clone(), body: string(body)})
		n := len(s.got)
		s.mu.Unlock()
		respond(w, r, n)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *recordingSink) deliveries() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]delivery(nil), s.got...)
}

func (s *recordingSink) waitFor(t *testing.T, n int) []delivery {
	t.Helper()
	enginetest.Eventually(t, fmt.Sprintf("the sink to get %d requests", n), func() (bool, string) {
		got := len(s.deliveries())
		return got >= n, fmt.Sprintf("%d requests", got)
	})
	return s.deliveries()
}

func ok(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusOK) }

// fastRetry is a pipeline whose Retry waits milliseconds, so tests of
// retries do not wait for the default backoff.
func fastRetry(t *testing.T, e *core.Engine, attempts int) string {
	t.Helper()
	spec := core.PipelineSpec{Name: "fast", Middleware: []core.MiddlewareSpec{
		{Type: core.Retry, Retry: &middleware.RetryConfig{
			MaxAttempts: attempts, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		}},
	}}
	if err := e.ApplyPipeline(spec); err != nil {
		t.Fatal(err)
	}
	return spec.Name
}

func reactorEngine(t *testing.T) *core.Engine {
	t.Helper()
	e := startEngine(t, core.Config{AllowPrivateSinks: true})
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPaid"})
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/shipping"})
	return e
}

func mustApplyReactor(t *testing.T, e *core.Engine, spec core.ReactorSpec) {
	t.Helper()
	if err := e.ApplyReactor(context.Background(), spec); err != nil {
		t.Fatalf("ApplyReactor(%s): %v", spec.Name, err)
	}
}

func ingestShopOrders(t *testing.T, e *core.Engine, events ...core.Event) []engine.Message {
	t.Helper()
	msgs, err := e.Ingest(context.Background(), "shop/orders", events)
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	return msgs
}

func waitReactor(t *testing.T, e *core.Engine, name string, cond func(core.ReactorStats) bool) core.ReactorStats {
	t.Helper()
	var st core.ReactorStats
	enginetest.Eventually(t, "reactor "+name, func() (bool, string) {
		var err error
		if st, err = e.ReactorStats(context.Background(), name); err != nil {
			t.Fatalf("ReactorStats(%s): %v", name, err)
		}
		return cond(st), fmt.Sprintf("%+v", st)
	})
	return st
}

func readAll(t *testing.T, e *core.Engine, stream string) []engine.Message {
	t.Helper()
	msgs, err := e.ReadStream(context.Background(), stream, 0, 1000)
	if err != nil {
		t.Fatalf("ReadStream(%s): %v", stream, err)
	}
	return msgs
}

func TestReactorKeepsEachKeysOrderAndRunsKeysInParallel(t *testing.T) {
	e := reactorEngine(t)
	sink := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		time.Sleep(5 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	mustApplyReactor(t, e, core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, StartFrom: projection.Beginning,
		SinkURL: sink.URL, Ordering: reactor.KeyOrdered, MaxInFlight: 16,
	})
	const keys, perKey = 40, 10
	for i := range perKey {
		events := make([]core.Event, keys)
		for k := range keys {
			events[k] = core.Event{Key: fmt.Sprintf("order-%d", k), Payload: fmt.Appendf(nil, `{"n":%d}`, i)}
		}
		ingestShopOrders(t, e, events...)
	}
	got := sink.waitFor(t, keys*perKey)
	waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.Delivered == keys*perKey })

	next := map[string]int{}
	for _, d := range got {
		key := d.header.Get("Ce-Partitionkey")
		if want := fmt.Sprintf(`{"n":%d}`, next[key]); d.body != want {
			t.Fatalf("key %s: got %s, want %s (out of order)", key, d.body, want)
		}
		next[key]++
	}
	if maxSeen := sink.maxSeen.Load(); maxSeen > 16 || maxSeen < 8 {
		t.Fatalf("at most %d requests ran at once; want keys in parallel, up to 16", maxSeen)
	}
}

func TestReactorPostsCloudEventsBinaryMode(t *testing.T) {
	e := reactorEngine(t)
	sink := newSink(t, ok)
	mustApplyReactor(t, e, core.ReactorSpec{Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL})
	msgs := ingestShopOrders(t, e, core.Event{
		Key: "order-1", Payload: []byte(`{"total":3}`), Headers: map[string]string{"ce-source": "/client", "ce-region": "eu"},
	})
	h := sink.waitFor(t, 1)[0].header
	m := msgs[0]
	want := map[string]string{
		"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": m.ID, "Ce-Type": "OrderPaid",
		"Ce-Source": "/namespaces/shop/streams/orders", "Ce-Partitionkey": "order-1", "Ce-Sequence": "1",
		"Ce-Correlationid": m.CorrelationID, "Ce-Region": "eu", "Ce-Time": m.Time.Format(time.RFC3339Nano),
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: got %q, want %q", k, got, v)
		}
	}
	if h.Get("Ce-Causationid") != "" {
		t.Errorf("ce-causationid %q on an event caused by none", h.Get("Ce-Causationid"))
	}
}

func TestReactorRetriesASinkThatFailsThreeTimes(t *testing.T) {
	e := reactorEngine(t)
	sink := newSink(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mustApplyReactor(t, e, core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL, Pipeline: fastRetry(t, e, 5),
	})
	ingestJSON(t, e, "shop/orders", `{}`)
	st := waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.Delivered == 1 })
	if n := len(sink.deliveries()); n != 4 || st.DeadLettered != 0 {
		t.Fatalf("%d requests, %d dead-lettered; want 4 and 0", n, st.DeadLettered)
	}
}

func TestReactorHonoursRetryAfter(t *testing.T) {
	e := reactorEngine(t)
	sink := newSink(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	pipeline := core.PipelineSpec{Name: "slowcap", Middleware: []core.MiddlewareSpec{
		{Type: core.Retry, Retry: &middleware.RetryConfig{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Second}},
	}}
	if err := e.ApplyPipeline(pipeline); err != nil {
		t.Fatal(err)
	}
	mustApplyReactor(t, e, core.ReactorSpec{Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL, Pipeline: "slowcap"})
	start := time.Now()
	ingestJSON(t, e, "shop/orders", `{}`)
	sink.waitFor(t, 2)
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("retried after %s, want Retry-After's 1s", waited)
	}
}

func TestReactorDeadLettersA400AtOnce(t *testing.T) {
	e := reactorEngine(t)
	sink := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		http.Error(w, "no such order", http.StatusBadRequest)
	})
	mustApplyReactor(t, e, core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL, Pipeline: fastRetry(t, e, 5),
	})
	ingestJSON(t, e, "shop/orders", `{}`, `{}`)
	waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.DeadLettered == 2 })
	if n := len(sink.deliveries()); n != 2 {
		t.Fatalf("%d requests for 2 events; a 400 must not be retried", n)
	}
	var dead []engine.Message
	enginetest.Eventually(t, "2 dead letters", func() bool { dead = readAll(t, e, "dead"); return len(dead) == 2 })
	if h := dead[0].Headers; !strings.Contains(h[engine.HeaderDeadLetterError], "400") ||
		h[engine.HeaderDeadLetterHandler] != core.ReactorHandlerName("shop/ship") || h[engine.HeaderDeadLetterAttempts] != "1" {
		t.Fatalf("dead-letter headers %v", h)
	}
}

func TestReactorTimeoutBoundsEachAttempt(t *testing.T) {
	e := reactorEngine(t)
	sink := newSink(t, func(_ http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mustApplyReactor(t, e, core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL,
		Pipeline: fastRetry(t, e, 2), Timeout: 100 * time.Millisecond,
	})
	start := time.Now()
	ingestJSON(t, e, "shop/orders", `{}`)
	waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.DeadLettered == 1 })
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("two attempts took %s; each should end after 100ms", took)
	}
	var dead []engine.Message
	enginetest.Eventually(t, "a dead letter", func() bool { dead = readAll(t, e, "dead"); return len(dead) == 1 })
	if h := dead[0].Headers; !strings.Contains(h[engine.HeaderDeadLetterError], "did not answer within 100ms") ||
		h[engine.HeaderDeadLetterAttempts] != "2" {
		t.Fatalf("dead-letter headers %v", h)
	}
}

func TestReactorAppendsRepliesOnceWithCausation(t *testing.T) {
	e := reactorEngine(t)
	sink := newSink(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/cloudevents-batch+json")
		id := r.Header.Get("Ce-Id")
		_, _ = fmt.Fprintf(w, `[{"specversion":"1.0","type":"Shipped","source":"/shipping","partitionkey":"%s","data":{"of":%q}},`+
			`{"specversion":"1.0","type":"Invoiced","source":"/shipping","data":{"of":%q}}]`, r.Header.Get("Ce-Partitionkey"), id, id)
	})
	spec := core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL,
		StartFrom: projection.Beginning, ReplyStream: "shop/shipping",
	}
	causes := ingestShopOrders(t, e,
		core.Event{Key: "order-1", Payload: []byte(`{}`)}, core.Event{Key: "order-2", Payload: []byte(`{}`)})
	mustApplyReactor(t, e, spec)
	var replies []engine.Message
	enginetest.Eventually(t, "4 replies", func() bool { replies = readAll(t, e, "shop/shipping"); return len(replies) == 4 })

	byCause := map[string][]engine.Message{}
	for _, r := range replies {
		byCause[r.CausationID] = append(byCause[r.CausationID], r)
	}
	for _, c := range causes {
		rs := byCause[c.ID]
		if len(rs) != 2 {
			t.Fatalf("cause %s has %d replies, want 2", c.ID, len(rs))
		}
		for _, r := range rs {
			if r.CorrelationID != c.CorrelationID {
				t.Errorf("reply %s: correlation %q, want the cause's %q", r.Name, r.CorrelationID, c.CorrelationID)
			}
		}
		if rs[0].Key != c.Key || rs[0].Version != 1 || rs[1].Key != "" {
			t.Errorf("replies %+v: want the first keyed %s at version 1, the second unkeyed", rs, c.Key)
		}
		if want := reactor.ReplyID("shop/ship", c.ID, 1); rs[1].ID != want {
			t.Errorf("second reply id %q, want the derived %q", rs[1].ID, want)
		}
	}

	// Deliver everything again: a new reactor of the same name starts from
	// the beginning; its replies' derived ids are already stored.
	if err := e.RemoveReactor(context.Background(), spec.Name); err != nil {
		t.Fatal(err)
	}
	mustApplyReactor(t, e, spec)
	sink.waitFor(t, 4)
	waitReactor(t, e, spec.Name, func(st core.ReactorStats) bool { return st.Delivered == 2 })
	if got := readAll(t, e, "shop/shipping"); len(got) != 4 {
		t.Fatalf("after redelivery the reply stream holds %d events, want 4", len(got))
	}
}

// A sink is not a poster the API authenticated: a reply that claims one,
// in binary mode or as a structured attribute, is stored without the claim,
// as ingest over HTTP stores a client's.
func TestRepliesCarryNoPosterTheSinkClaims(t *testing.T) {
	e := reactorEngine(t)
	sink := newSink(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.Header.Get("Ce-Partitionkey") == "binary" {
			w.Header().Set("Ce-Specversion", "1.0")
			w.Header().Set("Ce-Type", "Shipped")
			w.Header().Set("Ce-Source", "/shipping")
			w.Header().Set("Ce-"+core.HeaderUser, "mallory")
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{}`))
			return
		}
		w.Header().Set("Content-Type", "application/cloudevents+json")
		_, _ = fmt.Fprintf(w, `{"specversion":"1.0","type":"Shipped","source":"/shipping",%q:"mallory","data":{}}`, core.HeaderUser)
	})
	mustApplyReactor(t, e, core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL,
		StartFrom: projection.Beginning, ReplyStream: "shop/shipping",
	})
	ingestShopOrders(t, e, core.Event{Key: "binary", Payload: []byte(`{}`)}, core.Event{Key: "structured", Payload: []byte(`{}`)})
	var replies []engine.Message
	enginetest.Eventually(t, "2 replies", func() bool { replies = readAll(t, e, "shop/shipping"); return len(replies) == 2 })
	for _, r := range replies {
		for _, h := range []string{core.HeaderUser, "ce-" + core.HeaderUser} {
			if v, ok := r.Headers[h]; ok {
				t.Errorf("reply %s caused by %s carries %s = %q, a poster nobody authenticated", r.ID, r.CausationID, h, v)
			}
		}
	}
}

func TestReactorDeadLettersTheCauseOfAnInvalidReply(t *testing.T) {
	e := reactorEngine(t)
	sink := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Ce-Specversion", "1.0")
		w.Header().Set("Ce-Type", "Shipped")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{not json`)
	})
	mustApplyReactor(t, e, core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL, ReplyStream: "shop/shipping",
	})
	ingestJSON(t, e, "shop/orders", `{}`)
	waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.DeadLettered == 1 })
	var dead []engine.Message
	enginetest.Eventually(t, "a dead letter", func() bool { dead = readAll(t, e, "dead"); return len(dead) == 1 })
	if reason := dead[0].Headers[engine.HeaderDeadLetterError]; !strings.Contains(reason, "invalid reply") {
		t.Fatalf("dead-letter reason %q, want it to name the invalid reply", reason)
	}
	if n := len(readAll(t, e, "shop/shipping")); n != 0 {
		t.Fatalf("the reply stream holds %d events, want none", n)
	}
}

func TestReactorIgnoresAnswersWithoutAReplyStream(t *testing.T) {
	e := reactorEngine(t)
	sink := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/cloudevents+json")
		_, _ = io.WriteString(w, `{"specversion":"1.0","type":"Shipped","source":"/s","data":{}}`)
	})
	mustApplyReactor(t, e, core.ReactorSpec{Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL})
	ingestJSON(t, e, "shop/orders", `{}`)
	waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.Delivered == 1 })
	if n := len(readAll(t, e, "shop/shipping")); n != 0 {
		t.Fatalf("the shipping stream holds %d events, want none", n)
	}
}

func TestReactorCheckpointStaysBeforeEventsNotDoneAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	var failA atomic.Bool
	failA.Store(true)
	sink := newSink(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if failA.Load() && r.Header.Get("Ce-Partitionkey") == "a" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	spec := core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL, StartFrom: projection.Beginning,
	}
	// run starts an engine on dir's storage and returns a stop function.
	run := func() (*core.Engine, func()) {
		st, err := disk.Open(dir, disk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e := newEngine(t, core.Config{Store: st.Store, Outbox: st.Outbox, ReadModels: st.ReadModels, AllowPrivateSinks: true})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		mustApplyStream(t, e, core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPaid"})
		pipe := core.PipelineSpec{Name: "fast", Middleware: []core.MiddlewareSpec{{Type: core.Retry, Retry: &middleware.RetryConfig{
			MaxAttempts: 1000, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		}}}}
		if err := e.ApplyPipeline(pipe); err != nil {
			t.Fatal(err)
		}
		s := spec
		s.Pipeline = "fast"
		mustApplyReactor(t, e, s)
		return e, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			if err := errors.Join(e.Close(), st.Close()); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	}

	e, stop := run()
	ingestShopOrders(t, e,
		core.Event{Key: "a", Payload: []byte(`{}`)}, core.Event{Key: "b", Payload: []byte(`{}`)}, core.Event{Key: "b", Payload: []byte(`{}`)})
	st := waitReactor(t, e, spec.Name, func(st core.ReactorStats) bool { return st.Delivered == 2 })
	if st.Checkpoint["shop/orders"] != 0 || st.InFlight != 1 || st.Lag != 3 {
		t.Fatalf("with event 1 failing: %+v; want checkpoint 0, 1 in flight, lag 3", st)
	}
	stop()

	failA.Store(false)
	before := len(sink.deliveries())
	e, stop = run()
	st = waitReactor(t, e, spec.Name, func(st core.ReactorStats) bool { return st.Checkpoint["shop/orders"] == 3 })
	redelivered := map[string]int{}
	for _, d := range sink.deliveries()[before:] {
		redelivered[d.header.Get("Ce-Sequence")]++
	}
	// At least once: a request the first engine abandoned at shutdown may
	// still reach the sink and be counted here too.
	if redelivered["1"] < 1 || redelivered["2"] < 1 || redelivered["3"] < 1 {
		t.Fatalf("after the restart the sink got sequences %v; want 1, 2 and 3 again (at least once, from the checkpoint)", redelivered)
	}
	if st.Lag != 0 || st.InFlight != 0 {
		t.Fatalf("stats %+v; want no lag", st)
	}
	stop()

	before = len(sink.deliveries())
	e, stop = run()
	defer stop()
	st = waitReactor(t, e, spec.Name, func(core.ReactorStats) bool { return true })
	if st.Checkpoint["shop/orders"] != 3 || st.Lag != 0 {
		t.Fatalf("after a clean restart: %+v; want the stored checkpoint 3", st)
	}
	ingestJSON(t, e, "shop/orders", `{}`)
	sink.waitFor(t, before+1)
	waitReactor(t, e, spec.Name, func(st core.ReactorStats) bool { return st.Checkpoint["shop/orders"] == 4 })
	if got := sink.deliveries()[before:]; len(got) != 1 || got[0].header.Get("Ce-Sequence") != "4" {
		t.Fatalf("after a clean restart the sink got %d requests; want only the new event 4", len(got))
	}
}

func TestReactorRefusesPrivateSinksWithoutTheOption(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/orders"})
	for _, url := range []string{"http://127.0.0.1:8080/", "http://localhost/x", "http://169.254.169.254/latest", "http://[::1]:9000"} {
		err := e.ApplyReactor(context.Background(), core.ReactorSpec{Name: "shop/r", Streams: []string{"shop/orders"}, SinkURL: url})
		if !errors.Is(err, core.ErrInvalidSpec) || !errors.Is(err, reactor.ErrPrivateSink) {
			t.Errorf("%s: got %v, want ErrInvalidSpec and ErrPrivateSink", url, err)
		}
	}
}

func TestReactorWaitsForItsReplyStream(t *testing.T) {
	e := reactorEngine(t)
	sink := newSink(t, ok)
	err := e.ApplyReactor(context.Background(), core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL, ReplyStream: "shop/missing",
	})
	if !errors.Is(err, core.ErrStreamNotFound) {
		t.Fatalf("got %v, want ErrStreamNotFound", err)
	}
	ingestJSON(t, e, "shop/orders", `{}`)
	enginetest.Eventually(t, "the event stored", func() bool {
		st, err := e.StreamStats(context.Background(), "shop/orders")
		return err == nil && st.LastSequence == 1
	})
	if n := len(sink.deliveries()); n != 0 {
		t.Fatalf("delivered %d events while the reply stream is missing", n)
	}
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/missing"})
	waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.Waiting == nil && st.Delivered == 1 })
}

func TestReactorWithAHangingSinkDoesNotHoldBackAProjection(t *testing.T) {
	e := reactorEngine(t)
	release := make(chan struct{})
	sink := newSink(t, func(_ http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	mustApplyReactor(t, e, core.ReactorSpec{
		Name: "shop/stuck", Streams: []string{"shop/orders"}, SinkURL: sink.URL, Timeout: time.Minute, Ordering: reactor.Ordered,
	})
	mustApplyProjection(t, e, core.ProjectionSpec{Spec: projection.Spec{
		Name: "shop/count", Streams: []string{"shop/orders"}, StartFrom: projection.Beginning, Type: projection.Count, Key: "n",
	}})
	const events = 2000
	for range events / 100 {
		payloads := make([]string, 100)
		for i := range payloads {
			payloads[i] = `{}`
		}
		ingestJSON(t, e, "shop/orders", payloads...)
	}
	waitProcessed(t, e, "shop/count", events)
	st, err := e.ReactorStats(context.Background(), "shop/stuck")
	if err != nil {
		t.Fatal(err)
	}
	if st.Delivered != 0 || st.Checkpoint["shop/orders"] != 0 || st.Lag != events {
		t.Fatalf("stuck reactor: %+v; want nothing delivered and a lag of %d", st, events)
	}
}
