package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

const orderPath = "/v1/namespaces/team-a/streams/items-events/keys/order-42/events"

func keyPath(key string) string {
	return "/v1/namespaces/team-a/streams/items-events/keys/" + key + "/events"
}

// keyPage is a read of one key.
type keyPage struct {
	Events []struct {
		ID       string `json:"id"`
		Key      string `json:"key"`
		Version  uint64 `json:"version"`
		Position uint64 `json:"position"`
		Payload  any    `json:"payload"`
	} `json:"events"`
	Next    uint64 `json:"next"`
	Version uint64 `json:"version"`
}

func (a *api) readKey(path string, headers ...string) (keyPage, response) {
	a.t.Helper()
	r := a.do(http.MethodGet, path, "", nil, headers...)
	var page keyPage
	if r.status == http.StatusOK {
		must(a.t, json.Unmarshal(r.body, &page))
	}
	return page, r
}

// wantAccepted checks a 202 for a keyed append: its key, version and ETag.
func wantAccepted(t *testing.T, r response, key string, version uint64) {
	t.Helper()
	expectStatus(t, r, http.StatusAccepted)
	got := r.json(t)
	if got["key"] != key || got["version"] != float64(version) {
		t.Fatalf("202 says key %v version %v, want %s and %d: %s", got["key"], got["version"], key, version, r.body)
	}
	if tag := r.header.Get("ETag"); tag != fmt.Sprintf(`"%d"`, version) {
		t.Fatalf("ETag %q, want \"%d\"", tag, version)
	}
}

func wantConflict(t *testing.T, r response, current uint64) {
	t.Helper()
	expectStatus(t, r, http.StatusPreconditionFailed)
	p := r.json(t)
	if !strings.HasSuffix(p["type"].(string), "#version-conflict") {
		t.Fatalf("412 type %v, want one ending in #version-conflict", p["type"])
	}
	if !strings.Contains(p["detail"].(string), fmt.Sprintf("version %d", current)) {
		t.Fatalf("412 detail %q does not give the current version %d", p["detail"], current)
	}
	if tag := r.header.Get("ETag"); tag != fmt.Sprintf(`"%d"`, current) {
		t.Fatalf("412 ETag %q, want \"%d\"", tag, current)
	}
}

func TestAppendsToAKeyGetTheKeysNextVersions(t *testing.T) {
	a := newAPI(t, apiOptions{})
	wantAccepted(t, a.post(orderPath, "application/json", `{"n":1}`), "order-42", 1)
	wantAccepted(t, a.post(orderPath, "application/x-ndjson", "{\"n\":2}\n{\"n\":3}\n"), "order-42", 3)
	wantAccepted(t, a.post(keyPath("order-7"), "application/json", `{"n":1}`), "order-7", 1)
	// An unkeyed event has neither key nor version, nor ETag.
	r := a.post(itemsPath, "application/json", `{"n":0}`)
	expectStatus(t, r, http.StatusAccepted)
	if got := r.json(t); got["key"] != nil || got["version"] != nil || r.header.Get("ETag") != "" {
		t.Fatalf("unkeyed 202 %s with ETag %q: want no key, version or ETag", r.body, r.header.Get("ETag"))
	}
	page, resp := a.readKey(orderPath)
	expectStatus(t, resp, http.StatusOK)
	if len(page.Events) != 3 || page.Version != 3 || page.Next != 3 || resp.header.Get("ETag") != `"3"` {
		t.Fatalf("read of order-42: %s with ETag %q", resp.body, resp.header.Get("ETag"))
	}
	for i, e := range page.Events {
		if e.Key != "order-42" || e.Version != uint64(i+1) {
			t.Fatalf("event %d: key %q version %d", i, e.Key, e.Version)
		}
	}
	stored := a.waitStored(itemsPath, 5)
	for _, e := range stored {
		if e["key"] == "order-42" && (e["version"] == nil || e["position"] == nil) {
			t.Fatalf("a keyed event in a stream read lacks its version or position: %v", e)
		}
	}
}

func TestConditionalAppendsSucceedOnlyAtTheExpectedVersion(t *testing.T) {
	a := newAPI(t, apiOptions{})
	wantConflict(t, a.post(orderPath, "application/json", `{}`, "If-Match", "*"), 0)
	wantAccepted(t, a.post(orderPath, "application/json", `{}`, "If-None-Match", "*"), "order-42", 1)
	wantConflict(t, a.post(orderPath, "application/json", `{}`, "If-None-Match", "*"), 1)
	wantAccepted(t, a.post(orderPath, "application/json", `{}`, "If-Match", "*"), "order-42", 2)
	wantConflict(t, a.post(orderPath, "application/json", `{}`, "If-Match", `"1"`), 2)
	wantConflict(t, a.post(orderPath, "application/x-ndjson", "{}\n{}\n", "If-Match", `"3"`), 2)
	wantAccepted(t, a.post(orderPath, "application/x-ndjson", "{}\n{}\n", "If-Match", `"2"`), "order-42", 4)
	wantAccepted(t, a.post(keyPath("fresh"), "application/json", `{}`, "If-Match", `"0"`), "fresh", 1)

	page, _ := a.readKey(orderPath)
	if len(page.Events) != 4 || page.Version != 4 {
		t.Fatalf("after the refused appends the key holds %d events at version %d, want 4 at 4", len(page.Events), page.Version)
	}
}

func TestMalformedConditionsAndKeysAreBadRequests(t *testing.T) {
	a := newAPI(t, apiOptions{})
	for name, headers := range map[string][]string{
		"weak ETag":                 {"If-Match", `W/"1"`},
		"list":                      {"If-Match", `"1", "2"`},
		"unquoted":                  {"If-Match", `1`},
		"not a number":              {"If-Match", `"one"`},
		"If-None-Match with a tag":  {"If-None-Match", `"1"`},
		"both headers":              {"If-Match", `"1"`, "If-None-Match", "*"},
		"condition on unkeyed POST": {"If-Match", `"0"`},
	} {
		path := orderPath
		if name == "condition on unkeyed POST" {
			path = itemsPath
		}
		r := a.post(path, "application/json", `{}`, headers...)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", name, r.status, r.body)
		}
	}
	for name, key := range map[string]string{
		"escaped slash":     "a%2Fb",
		"control character": "a%01b",
		"not UTF-8":         "a%FFb",
		"too long":          strings.Repeat("k", 257),
		"dot":               "%2E",
		"dot dot":           "%2E%2E",
	} {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			r := a.do(method, keyPath(key), "application/json", []byte(`{}`))
			if r.status != http.StatusBadRequest {
				t.Errorf("%s %s: status %d, want 400: %s", method, name, r.status, r.body)
			}
		}
	}
	// Decoded once: %252F is the three characters %2F, a fine key.
	wantAccepted(t, a.post(keyPath("a%252Fb"), "application/json", `{}`), "a%2Fb", 1)
	wantAccepted(t, a.post(keyPath("caf%C3%A9%20au%20lait"), "application/json", `{}`), "café au lait", 1)
	expectStatus(t, a.post("/v1/namespaces/team-a/streams/nope/keys/k/events", "application/json", `{}`), http.StatusNotFound)
	expectStatus(t, a.get("/v1/namespaces/team-a/streams/nope/keys/k/events"), http.StatusNotFound)
	expectStatus(t, a.do(http.MethodPut, orderPath, "application/json", []byte(`{}`)), http.StatusMethodNotAllowed)
}

func TestCloudEventsPartitionKeyIsTheEventsKey(t *testing.T) {
	a := newAPI(t, apiOptions{})
	r := a.post(itemsPath, "application/json", `{}`, "ce-id", "b1", "ce-type", "Placed", "ce-source", "/t", "ce-partitionkey", "order-1")
	wantAccepted(t, r, "order-1", 1)
	batch := `[
	  {"specversion":"1.0","id":"c1","type":"Placed","source":"/t","partitionkey":"order-1","subject":"s","data":{}},
	  {"specversion":"1.0","id":"c2","type":"Placed","source":"/t","partitionkey":"order-2","data":{}},
	  {"specversion":"1.0","id":"c3","type":"Placed","source":"/t","partitionkey":"order-1","data":{}}]`
	expectStatus(t, a.post(itemsPath, "application/cloudevents-batch+json", batch), http.StatusAccepted)
	// A condition needs one key, checked before anything else.
	expectStatus(t, a.post(itemsPath, "application/cloudevents-batch+json", batch, "If-Match", `"3"`), http.StatusBadRequest)
	sameKey := `[
	  {"specversion":"1.0","id":"c1","type":"Placed","source":"/t","partitionkey":"order-1","data":{}},
	  {"specversion":"1.0","id":"c3","type":"Placed","source":"/t","partitionkey":"order-1","data":{}}]`
	r = a.post(itemsPath, "application/cloudevents-batch+json", sameKey, "If-Match", `"0"`) // all repeats: the condition is not checked
	expectStatus(t, r, http.StatusAccepted)
	if got := r.json(t); got["version"] != float64(3) || got["key"] != "order-1" {
		t.Fatalf("repeated batch: %s", r.body)
	}
	wantConflict(t, a.post(itemsPath, "application/json", `{}`, "ce-id", "b2", "ce-type", "Placed", "ce-source", "/t",
		"ce-partitionkey", "order-1", "If-Match", `"1"`), 3)
	// On a key's path, a CloudEvent naming another key is refused.
	one := `{"specversion":"1.0","id":"e1","type":"Placed","source":"/t","partitionkey":"order-9","data":{}}`
	expectStatus(t, a.post(keyPath("order-1"), "application/cloudevents+json", one), http.StatusBadRequest)

	page, _ := a.readKey(keyPath("order-1"))
	if page.Version != 3 || len(page.Events) != 3 || page.Events[1].ID != "c1" || page.Events[2].ID != "c3" {
		t.Fatalf("order-1: %+v", page)
	}
	if got := a.storedEvents(itemsPath); len(got) > 0 {
		for _, e := range got {
			if h, _ := e["headers"].(map[string]any); h["ce-partitionkey"] != nil {
				t.Fatalf("the partition key is the event's key, not a header: %v", e)
			}
		}
	}
}

// An NDJSON batch takes the request's ce-* headers, ce-partitionkey too:
// it is the key of every line, as on the key's path.
func TestNDJSONBatchWithCEPartitionKeyKeysEveryLine(t *testing.T) {
	a := newAPI(t, apiOptions{})
	lines := "{\"n\":1}\n{\"n\":2}\n"
	wantAccepted(t, a.post(itemsPath, "application/x-ndjson", lines, "ce-partitionkey", "order-7"), "order-7", 2)
	wantConflict(t, a.post(itemsPath, "application/x-ndjson", lines, "ce-partitionkey", "order-7", "If-Match", `"1"`), 2)
	wantAccepted(t, a.post(itemsPath, "application/x-ndjson", lines, "ce-partitionkey", "order-7", "If-Match", `"2"`), "order-7", 4)
	expectStatus(t, a.post(keyPath("order-1"), "application/x-ndjson", lines, "ce-partitionkey", "order-7"), http.StatusBadRequest)
	if page, _ := a.readKey(keyPath("order-7")); page.Version != 4 || len(page.Events) != 4 {
		t.Fatalf("order-7: %+v, want its 4 events", page)
	}
}

func TestARetriedEventIDAnswersTheOriginalKeyAndVersion(t *testing.T) {
	a := newAPI(t, apiOptions{})
	wantAccepted(t, a.post(orderPath, "application/json", `{}`, "Idempotency-Key", "once"), "order-42", 1)
	wantAccepted(t, a.post(orderPath, "application/json", `{}`), "order-42", 2)
	// The same ID with a stale condition, then on another key's path: the original answers.
	wantAccepted(t, a.post(orderPath, "application/json", `{}`, "Idempotency-Key", "once", "If-Match", `"0"`), "order-42", 1)
	wantAccepted(t, a.post(keyPath("other"), "application/json", `{}`, "Idempotency-Key", "once"), "order-42", 1)
	r := a.post(itemsPath, "application/json", `{}`, "Idempotency-Key", "once")
	expectStatus(t, r, http.StatusAccepted)
	if got := r.json(t); got["version"] != float64(1) || got["key"] != "order-42" {
		t.Fatalf("repeat on the stream's path: %s", r.body)
	}
	page, _ := a.readKey(keyPath("other"))
	if page.Version != 0 || len(page.Events) != 0 {
		t.Fatalf("key other got %d events at version %d; the repeat must store nothing", len(page.Events), page.Version)
	}
	a.waitStored(itemsPath, 2)
	wantAccepted(t, a.post(keyPath("other"), "application/json", `{}`, "Idempotency-Key", "once"), "order-42", 1)
}

func TestReadsOfAKeyPageByVersionAndAnswerNotModified(t *testing.T) {
	a := newAPI(t, apiOptions{})
	for range 5 {
		expectStatus(t, a.post(orderPath, "application/json", `{}`), http.StatusAccepted)
	}
	for _, tt := range []struct {
		query         string
		first, n      int
		next, version uint64
	}{
		{"?limit=2", 1, 2, 2, 5},
		{"?after=2&limit=2", 3, 2, 4, 5},
		{"?after=4", 5, 1, 5, 5},
		{"?after=5", 0, 0, 5, 5},
		{"?after=99", 0, 0, 99, 5},
	} {
		page, r := a.readKey(orderPath + tt.query)
		expectStatus(t, r, http.StatusOK)
		if len(page.Events) != tt.n || page.Next != tt.next || page.Version != tt.version {
			t.Fatalf("%s: %d events, next %d, version %d; want %d, %d, %d",
				tt.query, len(page.Events), page.Next, page.Version, tt.n, tt.next, tt.version)
		}
		if tt.n > 0 && page.Events[0].Version != uint64(tt.first) {
			t.Fatalf("%s starts at version %d, want %d", tt.query, page.Events[0].Version, tt.first)
		}
	}
	page, r := a.readKey(keyPath("nobody"))
	expectStatus(t, r, http.StatusOK)
	if page.Version != 0 || len(page.Events) != 0 || !strings.Contains(string(r.body), `"events":[]`) {
		t.Fatalf("a key without events: %s", r.body)
	}
	_, r = a.readKey(orderPath, "If-None-Match", `"5"`)
	if r.status != http.StatusNotModified || len(r.body) != 0 || r.header.Get("ETag") != `"5"` {
		t.Fatalf("If-None-Match at the current version: %d %q ETag %q, want 304", r.status, r.body, r.header.Get("ETag"))
	}
	expectStatus(t, a.post(orderPath, "application/json", `{}`), http.StatusAccepted)
	_, r = a.readKey(orderPath, "If-None-Match", `"5"`)
	expectStatus(t, r, http.StatusOK)
	for _, bad := range []string{"?limit=0", "?after=x"} {
		_, r := a.readKey(orderPath + bad)
		expectStatus(t, r, http.StatusBadRequest)
	}
}

// With the processor stopped nothing reaches the store, yet a 202 for a key
// is in the next read of that key.
func TestAReadOfAKeyShowsEveryAcceptedEventBeforeItIsStored(t *testing.T) {
	a := newAPI(t, apiOptions{notRunning: true})
	wantAccepted(t, a.post(orderPath, "application/json", `{"n":1}`), "order-42", 1)
	wantAccepted(t, a.post(orderPath, "application/json", `{"n":2}`, "If-Match", `"1"`), "order-42", 2)
	page, r := a.readKey(orderPath)
	expectStatus(t, r, http.StatusOK)
	if len(page.Events) != 2 || page.Version != 2 || page.Events[1].Payload.(map[string]any)["n"] != float64(2) {
		t.Fatalf("read-your-writes: %s", r.body)
	}
	if stored := a.storedEvents(itemsPath); len(stored) != 0 {
		t.Fatalf("the stream read shows %d stored events; the processor is stopped", len(stored))
	}
}

// The race of docs/entities.md: clients read a key's version and append
// with If-Match on that version until each has its share of successes.
func TestConcurrentIfMatchAppendsToOneKeyEachGetADistinctVersionWithoutGaps(t *testing.T) {
	const clients, successes = 32, 3
	a := newAPI(t, apiOptions{})
	path := keyPath("contended")
	type result struct {
		versions  []uint64
		conflicts int
		err       error
	}
	results := make(chan result, clients)
	for c := range clients {
		go func() {
			var res result
			defer func() { results <- res }()
			for len(res.versions) < successes {
				req, _ := http.NewRequest(http.MethodGet, a.server.URL+path, nil)
				resp, err := a.server.Client().Do(req)
				if err != nil {
					res.err = err
					return
				}
				var page keyPage
				err = json.NewDecoder(resp.Body).Decode(&page)
				_ = resp.Body.Close()
				if err != nil {
					res.err = err
					return
				}
				body := strings.NewReader(fmt.Sprintf(`{"client":%d}`, c))
				req, _ = http.NewRequest(http.MethodPost, a.server.URL+path, body)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("If-Match", fmt.Sprintf(`"%d"`, page.Version))
				resp, err = a.server.Client().Do(req)
				if err != nil {
					res.err = err
					return
				}
				var ok struct {
					Version uint64 `json:"version"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&ok)
				_ = resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusAccepted:
					if ok.Version != page.Version+1 {
						res.err = fmt.Errorf("If-Match %d answered version %d", page.Version, ok.Version)
						return
					}
					res.versions = append(res.versions, ok.Version)
				case http.StatusPreconditionFailed:
					res.conflicts++
				default:
					res.err = fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	owner := map[uint64]int{}
	conflicts := 0
	for c := range clients {
		res := <-results
		if res.err != nil {
			t.Fatalf("a client failed: %v", res.err)
		}
		conflicts += res.conflicts
		for _, v := range res.versions {
			if prior, dup := owner[v]; dup {
				t.Fatalf("version %d answered to two requests (results %d and %d)", v, prior, c)
			}
			owner[v] = c
		}
	}
	const total = clients * successes
	for v := uint64(1); v <= total; v++ {
		if _, ok := owner[v]; !ok {
			t.Fatalf("no 202 named version %d: a gap", v)
		}
	}
	page, _ := a.readKey(path + "?limit=1000")
	if page.Version != total || len(page.Events) != total {
		t.Fatalf("the key ends at version %d with %d events, want %d (the number of 202s)", page.Version, len(page.Events), total)
	}
	t.Logf("%d successes, %d conflicts", total, conflicts)
}
