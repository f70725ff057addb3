package loadgen_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
	"github.com/eventsourcing-dev/eventsourcing-operator/test/loadgen"
)

// streamURL serves the real handler over a running in-memory engine with
// one stream, and returns the stream's events URL.
func streamURL(t *testing.T) string {
	t.Helper()
	e, err := core.New(core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ApplyStream(core.StreamSpec{Name: "load/items", DefaultEventName: "ItemCreated"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	enginebench.RunEngine(t, e)
	h, err := httpapi.NewHandler(httpapi.Config{Engine: e, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/namespaces/load/streams/items/events"
}

// keyVersion reads a key's version from the API.
func keyVersion(t *testing.T, events, key string) uint64 {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(events, "/events") + "/keys/" + key + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var page struct{ Version uint64 }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return page.Version
}

// appendOne appends an event to key, unconditionally.
func appendOne(t *testing.T, events, key string) {
	t.Helper()
	keyURL := strings.TrimSuffix(events, "/events") + "/keys/" + key + "/events"
	if status, err := loadgen.Post(http.DefaultClient, keyURL, "application/json", []byte(`{}`)); err != nil || status != http.StatusAccepted {
		t.Fatalf("append to %s: status %d, error %v", key, status, err)
	}
}

func TestKeyedRunsAppendToOneKeyPerClient(t *testing.T) {
	for _, ifMatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("ifMatch=%v", ifMatch), func(t *testing.T) {
			url := streamURL(t)
			const clients, n = 4, 200
			res := loadgen.Generate(loadgen.Spec{PostURL: url, Clients: clients, N: n, KeyPrefix: "run", IfMatch: ifMatch})
			if res.Err != "" || res.Accepted != n || res.Conflicts != 0 {
				t.Fatalf("run: %d accepted, %d conflicts, error %q; want %d, 0, none", res.Accepted, res.Conflicts, res.Err, n)
			}
			var sum uint64
			for c := range clients {
				v := keyVersion(t, url, fmt.Sprintf("run-%d", c))
				if v == 0 {
					t.Errorf("key run-%d has no events: the clients did not each have a key", c)
				}
				sum += v
			}
			if sum != n {
				t.Errorf("the keys' versions add up to %d, want %d (one per accepted event)", sum, n)
			}
		})
	}
}

func TestAConflictIsCountedAndRetriedAtTheVersionItsETagGives(t *testing.T) {
	url := streamURL(t)
	// Someone else wrote to client 0's key first: its If-Match "0" fails.
	appendOne(t, url, "taken-0")
	res := loadgen.Generate(loadgen.Spec{PostURL: url, Clients: 1, N: 10, KeyPrefix: "taken", IfMatch: true})
	if res.Err != "" || res.Accepted != 10 || res.Conflicts != 1 {
		t.Fatalf("run: %d accepted, %d conflicts, error %q; want 10, 1, none", res.Accepted, res.Conflicts, res.Err)
	}
	if v := keyVersion(t, url, "taken-0"); v != 11 {
		t.Errorf("key taken-0 is at version %d, want 11", v)
	}
}

func TestAnUnconditionalKeyedRunFailsWhenAnotherWriterMovedItsKey(t *testing.T) {
	url := streamURL(t)
	appendOne(t, url, "shared-0")
	res := loadgen.Generate(loadgen.Spec{PostURL: url, Clients: 1, N: 10, KeyPrefix: "shared"})
	if !strings.Contains(res.Err, "202 gave version 2 after 0") {
		t.Errorf("run error %q, want the version the 202 gave reported", res.Err)
	}
}

func TestKeyedRunsNeedAStreamEventsURL(t *testing.T) {
	res := loadgen.Generate(loadgen.Spec{PostURL: "http://127.0.0.1:1/v1/namespaces/a/streams/b", Clients: 1, N: 1, KeyPrefix: "k"})
	if !strings.Contains(res.Err, "PostURL") {
		t.Errorf("run error %q, want PostURL refused", res.Err)
	}
}

func TestLiveReadersSeeEveryAcceptedEventOnceAndTheirLag(t *testing.T) {
	url := streamURL(t)
	const readers = 3
	live, err := loadgen.StartLiveReaders(loadgen.LiveSpec{URL: url, Readers: readers, Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := loadgen.Generate(loadgen.Spec{PostURL: url, Clients: 4, Rate: 500, Duration: 400 * time.Millisecond, RecordAccepted: true})
	if res.Err != "" || res.Accepted != 200 || len(res.Events) != 200 {
		t.Fatalf("run: %d accepted, %d recorded, error %q; want 200, 200, none", res.Accepted, len(res.Events), res.Err)
	}
	got := live.Finish(res.Events)
	if got.Err != "" || got.MinSeen() != 200 || len(got.Seen) != readers || got.Duplicates+got.OutOfOrder+got.Unknown != 0 {
		t.Fatalf("live readers: %+v; want %d readers that each saw the 200 events once, in order", got, readers)
	}
	if got.Max <= 0 || got.P50 > got.P99 || got.P99 > got.Max {
		t.Errorf("lags p50 %s p99 %s max %s: want 0 < max and p50 <= p99 <= max", got.P50, got.P99, got.Max)
	}
}

// cuttingSSEServer serves ids 1..n as Server-Sent Events, each answer
// ending after a few events with a comment, from Last-Event-ID on.
func cuttingSSEServer(t *testing.T, n int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
		w.Header().Set("Content-Type", "text/event-stream")
		for id := from + 1; id <= min(n, from+3); id++ {
			_, _ = fmt.Fprintf(w, "id: %d\nevent: E\ndata: {\"id\":\"event-%d\",\"sequence\":%d}\n\n", id, id, id)
		}
		_, _ = fmt.Fprint(w, ": keep-alive\n\n: disconnected: cut\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestLiveReadersResumeWithLastEventIDWhenTheServerEndsTheAnswer(t *testing.T) {
	srv := cuttingSSEServer(t, 10)
	live, err := loadgen.StartLiveReaders(loadgen.LiveSpec{URL: srv.URL, Readers: 2, Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	accepted := make([]loadgen.AcceptedEvent, 10)
	for i := range accepted {
		accepted[i] = loadgen.AcceptedEvent{ID: fmt.Sprintf("event-%d", i+1), At: time.Now().UnixNano()}
	}
	got := live.Finish(accepted)
	if got.MinSeen() != 10 || got.Duplicates+got.OutOfOrder+got.Unknown != 0 {
		t.Fatalf("live readers: %+v; want each to see the 10 events once, in order, across answers", got)
	}
	if got.Reconnects < 2*3 || !slices.Equal(got.Comments, []string{"disconnected: cut"}) {
		t.Errorf("reconnects %d, comments %q; want at least 6 (each reader, every 3 events) and the server's comment",
			got.Reconnects, got.Comments)
	}
}
