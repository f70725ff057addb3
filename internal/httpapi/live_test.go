package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
)

// postItems posts n JSON events to path, named name ("" for the stream's
// default), with "n" counting from first.
func (a *api) postItems(path, name string, first, n int) {
	a.t.Helper()
	for i := first; i < first+n; i++ {
		var headers []string
		if name != "" {
			headers = []string{"ce-type", name}
		}
		expectStatus(a.t, a.post(path, "application/json", fmt.Sprintf(`{"foo":"item","n":%d}`, i), headers...), http.StatusAccepted)
	}
}

// expectEvents reads n events from s and fails unless their ids count up
// from first.
func expectEvents(t *testing.T, s *sseStream, first uint64, n int) []sseMessage {
	t.Helper()
	got := make([]sseMessage, n)
	for i := range got {
		got[i] = s.nextEvent()
		if want := first + uint64(i); got[i].seq(t) != want {
			t.Fatalf("event %d: id %s, want %d", i, got[i].id, want)
		}
	}
	return got
}

func TestLiveReadSendsStoredEventsThenNewOnesAsServerSentEvents(t *testing.T) {
	a := newAPI(t, apiOptions{})
	a.postItems(itemsPath, "", 1, 3)
	stored := a.waitStored(itemsPath, 3)

	s := a.openSSE(itemsPath)
	got := expectEvents(t, s, 1, 3)
	for i, m := range got {
		v := m.view(t)
		if m.event != "ItemCreated" || v["id"] != stored[i]["id"] || v["sequence"] != stored[i]["sequence"] {
			t.Errorf("event %d: name %q view %v, want ItemCreated and the plain read's view %v", i, m.event, v, stored[i])
		}
		if p := v["payload"].(map[string]any); p["n"] != float64(i+1) {
			t.Errorf("event %d: payload %v, want n=%d", i, p, i+1)
		}
	}
	a.postItems(itemsPath, "", 4, 2)
	expectEvents(t, s, 4, 2)
}

func TestLiveReadStartsAfterTheGivenSequence(t *testing.T) {
	a := newAPI(t, apiOptions{})
	a.postItems(itemsPath, "", 1, 5)
	a.waitStored(itemsPath, 5)
	// limit does not apply to a live read.
	s := a.openSSE(itemsPath + "?after=3&limit=1")
	expectEvents(t, s, 4, 2)
	a.postItems(itemsPath, "", 6, 1)
	expectEvents(t, s, 6, 1)
}

// The test: a reader that connects mid-stream and reconnects with
// Last-Event-ID sees every event once, in order, while events keep coming.
func TestReaderReconnectingWithLastEventIDSeesEveryEventOnceInOrder(t *testing.T) {
	a := newAPI(t, apiOptions{})
	a.postItems(itemsPath, "", 1, 10)
	a.waitStored(itemsPath, 10)

	const total = 60
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 11; i <= total; i++ {
			r, err := a.server.Client().Post(a.server.URL+itemsPath, "application/json",
				strings.NewReader(fmt.Sprintf(`{"foo":"item","n":%d}`, i)))
			if err != nil || r.StatusCode != http.StatusAccepted {
				t.Errorf("post event %d: %v %v", i, err, r)
				return
			}
			_ = r.Body.Close()
		}
	}()

	var seen []sseMessage
	first := a.openSSE(itemsPath + "?after=4")
	for len(seen) < 20 {
		seen = append(seen, first.nextEvent())
	}
	first.close()
	// The URL still says after=4, as an EventSource resends it: the header wins.
	second := a.openSSE(itemsPath+"?after=4", "Last-Event-ID", seen[len(seen)-1].id)
	for len(seen) < total-4 {
		seen = append(seen, second.nextEvent())
	}
	wg.Wait()

	for i, m := range seen {
		want := uint64(i + 5)
		if m.seq(t) != want {
			t.Fatalf("event %d: id %s, want %d (every event once, in order)", i, m.id, want)
		}
		if p := m.view(t)["payload"].(map[string]any); p["n"] != float64(want) {
			t.Fatalf("event %d: payload %v, want n=%d", i, p, want)
		}
	}
}

func TestLiveKeyReadSendsTheKeysEventsWithVersionsAsIDs(t *testing.T) {
	a := newAPI(t, apiOptions{})
	cartA := "/v1/namespaces/team-a/streams/items-events/keys/cart-a/events"
	cartB := "/v1/namespaces/team-a/streams/items-events/keys/cart-b/events"
	a.postItems(cartA, "", 1, 2)
	a.postItems(cartB, "", 1, 1)

	// Read-your-writes: the events are there whether stored yet or not.
	s := a.openSSE(cartA)
	for i, m := range expectEvents(t, s, 1, 2) {
		if v := m.view(t); v["key"] != "cart-a" || v["version"] != float64(i+1) {
			t.Fatalf("event %d: view %v, want key cart-a version %d", i, v, i+1)
		}
	}
	a.postItems(cartB, "", 2, 1)
	a.postItems(cartA, "", 3, 1)
	if v := expectEvents(t, s, 3, 1)[0].view(t); v["key"] != "cart-a" {
		t.Fatalf("live event %v, want cart-a's third", v)
	}

	resumed := a.openSSE(cartA+"?after=0", "Last-Event-ID", "2")
	expectEvents(t, resumed, 3, 1)
	a.postItems(cartA, "", 4, 1)
	expectEvents(t, resumed, 4, 1)
}

func TestIdleLiveReadGetsHeartbeatComments(t *testing.T) {
	a := newAPI(t, apiOptions{live: httpapi.Config{LiveHeartbeat: 20 * time.Millisecond}})
	s := a.openSSE(itemsPath)
	for range 2 {
		if m := s.next(); m.comment != "keep-alive" {
			t.Fatalf("got %+v, want the keep-alive comment", m)
		}
	}
}

func TestSlowReaderIsDisconnectedWithACommentAndIngestGoesOn(t *testing.T) {
	const buffer, total = 16, 1000
	a := newAPI(t, apiOptions{live: httpapi.Config{LiveBuffer: buffer}, smallSocketBuffers: true})
	s := a.openSSEWith(smallBufferClient(), true, itemsPath)

	// The reader reads nothing while 1,000 events of 1 KiB arrive: the
	// socket fills, then the buffer; every POST is still answered at once.
	pad := strings.Repeat("x", 1024)
	for i := 1; i <= total; i += 100 {
		var batch strings.Builder
		for j := i; j < i+100; j++ {
			fmt.Fprintf(&batch, "{\"foo\":%q,\"n\":%d}\n", pad, j)
		}
		start := time.Now()
		expectStatus(t, a.post(itemsPath, "application/x-ndjson", batch.String()), http.StatusAccepted)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("a batch took %s to be accepted while a reader was stalled, want no wait", d)
		}
	}
	a.waitStored(itemsPath, total)

	s.resume()
	var last uint64
	for {
		m := s.next()
		if m.comment != "" {
			want := fmt.Sprintf("disconnected: the reader fell %d events behind; reconnect with Last-Event-ID: %d to resume", buffer, last)
			if m.comment != want {
				t.Fatalf("final comment %q, want %q", m.comment, want)
			}
			break
		}
		if m.seq(t) != last+1 {
			t.Fatalf("event id %s after %d, want %d", m.id, last, last+1)
		}
		last++
	}
	s.waitEnded(5 * time.Second)
	if last >= total {
		t.Fatalf("the stalled reader got all %d events, want it disconnected before", total)
	}

	// It resumes where it was cut off.
	resumed := a.openSSE(itemsPath, "Last-Event-ID", fmt.Sprint(last))
	expectEvents(t, resumed, last+1, int(total-last))
}

func TestLiveReadWithNameKeepsOnlyThatName(t *testing.T) {
	a := newAPI(t, apiOptions{})
	for i := 1; i <= 3; i++ {
		a.postItems(itemsPath, "ItemCreated", i, 1)
		a.postItems(itemsPath, "ItemRemoved", i, 1)
	}
	a.waitStored(itemsPath, 6)
	s := a.openSSE(itemsPath + "?name=ItemRemoved")
	for _, want := range []uint64{2, 4, 6} {
		if m := s.nextEvent(); m.seq(t) != want || m.event != "ItemRemoved" {
			t.Fatalf("got id %s %q, want %d ItemRemoved", m.id, m.event, want)
		}
	}
	a.postItems(itemsPath, "ItemCreated", 4, 1)
	a.postItems(itemsPath, "ItemRemoved", 4, 1)
	if m := s.nextEvent(); m.seq(t) != 8 {
		t.Fatalf("got id %s, want 8 (7 is an ItemCreated)", m.id)
	}
}

func TestPlainReadWithNamePagesWithoutMissingEvents(t *testing.T) {
	a := newAPI(t, apiOptions{})
	for i := 1; i <= 5; i++ {
		a.postItems(itemsPath, "ItemCreated", i, 1)
		a.postItems(itemsPath, "ItemRemoved", i, 1)
	}
	a.waitStored(itemsPath, 10)
	var seqs []float64
	after := 0.0
	for page := 0; ; page++ {
		r := a.get(fmt.Sprintf("%s?name=ItemCreated&limit=2&after=%d", itemsPath, int(after)))
		expectStatus(t, r, http.StatusOK)
		body := r.json(t)
		events := body["events"].([]any)
		for _, e := range events {
			ev := e.(map[string]any)
			if ev["name"] != "ItemCreated" {
				t.Fatalf("event %v, want only ItemCreated", ev)
			}
			seqs = append(seqs, ev["sequence"].(float64))
		}
		// A full page stops at its last event, so the next one misses nothing.
		if len(events) == 2 && body["next"] != events[1].(map[string]any)["sequence"] {
			t.Fatalf("next %v of a full page, want its last event's sequence", body["next"])
		}
		if body["next"] == after {
			break
		}
		after = body["next"].(float64)
		if page > 10 {
			t.Fatal("paging does not end")
		}
	}
	if fmt.Sprint(seqs) != "[1 3 5 7 9]" {
		t.Fatalf("sequences %v, want [1 3 5 7 9]", seqs)
	}
}

func TestLongPollAnswersAsSoonAsAnEventArrives(t *testing.T) {
	a := newAPI(t, apiOptions{})
	a.postItems(itemsPath, "", 1, 2)
	a.waitStored(itemsPath, 2)
	cart := "/v1/namespaces/team-a/streams/items-events/keys/cart/events"
	for _, c := range []struct{ path, post string }{
		{itemsPath + "?after=2&wait=30s", itemsPath},
		{cart + "?after=0&wait=30s", cart},
	} {
		time.AfterFunc(200*time.Millisecond, func() {
			r, err := a.server.Client().Post(a.server.URL+c.post, "application/json", strings.NewReader(`{"foo":"late","n":3}`))
			if err == nil {
				_ = r.Body.Close()
			}
		})
		start := time.Now()
		r := a.get(c.path)
		expectStatus(t, r, http.StatusOK)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("%s answered after %s, want soon after the event arrived", c.path, d)
		}
		events := r.json(t)["events"].([]any)
		if len(events) != 1 || events[0].(map[string]any)["payload"].(map[string]any)["foo"] != "late" {
			t.Fatalf("%s: events %v, want the late one", c.path, events)
		}
	}
}

func TestLongPollAnswersEmptyWhenNothingArrivesInTime(t *testing.T) {
	a := newAPI(t, apiOptions{})
	a.postItems(itemsPath, "", 1, 1)
	a.waitStored(itemsPath, 1)
	for _, path := range []string{
		itemsPath + "?after=1&wait=300ms",
		itemsPath + "?name=Nothing&wait=300ms",
		"/v1/namespaces/team-a/streams/items-events/keys/nobody/events?wait=300ms",
	} {
		start := time.Now()
		r := a.get(path)
		expectStatus(t, r, http.StatusOK)
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("%s answered after %s, want a wait of 300ms", path, d)
		}
		if events := r.json(t)["events"].([]any); len(events) != 0 {
			t.Errorf("%s: events %v, want none", path, events)
		}
	}
}

func TestBadLiveAndWaitParametersAreRefused(t *testing.T) {
	a := newAPI(t, apiOptions{})
	key := "/v1/namespaces/team-a/streams/items-events/keys/k/events"
	for _, path := range []string{
		itemsPath + "?wait=61s", itemsPath + "?wait=soon", itemsPath + "?wait=-1s", itemsPath + "?name=",
		key + "?wait=2m", key + "?name=ItemCreated",
	} {
		expectStatus(t, a.get(path), http.StatusBadRequest)
	}
	for _, path := range []string{itemsPath, key} {
		expectStatus(t, a.do(http.MethodGet, path, "", nil, "Accept", "text/event-stream", "Last-Event-ID", "x"),
			http.StatusBadRequest)
	}
	expectStatus(t, a.do(http.MethodGet, "/v1/namespaces/team-a/streams/nope/events", "", nil, "Accept", "text/event-stream"),
		http.StatusNotFound)
}

func TestLiveReadsAndLongPollsAreGuardedAsReads(t *testing.T) {
	a := newAPI(t, apiOptions{guard: denyGuard{http.StatusForbidden}})
	key := "/v1/namespaces/team-a/streams/items-events/keys/k/events"
	for _, r := range []response{
		a.do(http.MethodGet, itemsPath, "", nil, "Accept", "text/event-stream"),
		a.do(http.MethodGet, key, "", nil, "Accept", "text/event-stream"),
		a.get(itemsPath + "?wait=30s"),
		a.get(key + "?wait=30s"),
	} {
		expectStatus(t, r, http.StatusForbidden)
		if d := r.json(t)["detail"]; d != "get streams/events team-a/items-events denied" {
			t.Errorf("guard asked %q, want the read action", d)
		}
	}
}
