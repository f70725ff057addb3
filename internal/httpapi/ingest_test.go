package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
)

// The seed library's example: items posted in JSON, Avro and Protobuf end up
// in one read model as plain JSON, in order.
func TestIngestAcceptsEachFormatOfTheStreamAndProjectsThem(t *testing.T) {
	a := newAPI(t, apiOptions{})
	cases := []struct {
		name, contentType, query string
		body                     []byte
	}{
		{"json", "application/json", "", []byte(`{"foo":"a","n":1}`)},
		{"json with charset", "application/json; charset=utf-8", "", []byte(`{"foo":"b","n":2}`)},
		{"avro", "application/avro", "", avroItem(t, "c", 3)},
		{"protobuf", "application/x-protobuf", "", protoItem(t, "d", 4)},
		{"avro by ?format=", "application/octet-stream", "?format=application/avro", avroItem(t, "e", 5)},
		{"protobuf by ?format= alias", "", "?format=protobuf", protoItem(t, "f", 6)},
		{"no content type is JSON", "", "", []byte(`{"foo":"g","n":7}`)},
	}
	for _, c := range cases {
		r := a.do(http.MethodPost, itemsPath+c.query, c.contentType, c.body)
		expectStatus(t, r, http.StatusAccepted)
		got := r.json(t)
		if got["accepted"] != true || got["stream"] != "items-events" || got["id"] == "" {
			t.Fatalf("%s: answer %v, want accepted true, stream items-events and an id", c.name, got)
		}
	}
	a.readModel(`{"items":[{"foo":"a","n":1},{"foo":"b","n":2},{"foo":"c","n":3},{"foo":"d","n":4},
		{"foo":"e","n":5},{"foo":"f","n":6},{"foo":"g","n":7}]}`)
	events := a.waitStored(itemsPath, len(cases))
	for i, ct := range []string{"application/json", "application/json", "application/avro", "application/x-protobuf",
		"application/avro", "application/x-protobuf", "application/json"} {
		if events[i]["contentType"] != ct {
			t.Errorf("event %d content type %v, want %s", i, events[i]["contentType"], ct)
		}
	}
}

// The status table of docs/http-api.md, one row (or more) per status.
func TestIngestAnswersTheStatusesOfTheContract(t *testing.T) {
	a := newAPI(t, apiOptions{maxEventBytes: 64})
	big := `{"foo":"` + strings.Repeat("x", 100) + `"}`
	cases := []struct {
		name        string
		path        string
		contentType string
		body        []byte
		want        int
		detail      string
	}{
		{"JSON that does not parse", itemsPath, "application/json", []byte(`{"foo":`), 400, "event 0"},
		{"Avro that does not decode", itemsPath, "application/avro", []byte{0x02}, 400, "event 0"},
		{"protobuf that does not unmarshal", itemsPath, "application/x-protobuf", []byte{0xff, 0xff}, 400, "event 0"},
		{"no event name anywhere", "/v1/namespaces/team-a/streams/json-only/events", "application/json", []byte(`{}`), 400, "defaultEventName"},
		{"unknown stream", "/v1/namespaces/team-a/streams/nope/events", "application/json", []byte(`{}`), 404, `"nope"`},
		{"stream of another namespace", "/v1/namespaces/team-b/streams/items-events/events", "application/json", []byte(`{}`), 404, `"team-b"`},
		{"invalid namespace name", "/v1/namespaces/Team_A/streams/items-events/events", "application/json", []byte(`{}`), 404, "not a valid"},
		{"body over the limit", itemsPath, "application/json", []byte(big), 413, "limit"},
		{"unregistered content type", itemsPath, "text/plain", []byte(`hi`), 415, "text/plain"},
		{
			"content type the stream does not accept",
			"/v1/namespaces/team-a/streams/json-only/events?name=X", "application/avro", avroItem(t, "a", 1), 415, "application/avro",
		},
		{"curl -d without a content type", itemsPath, "application/x-www-form-urlencoded", []byte(`{}`), 415, "Content-Type: application/json"},
		{"an id too long", itemsPath + "?name=" + strings.Repeat("n", 300), "application/json", []byte(`{}`), 400, "at most 256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := a.do(http.MethodPost, c.path, c.contentType, c.body)
			expectStatus(t, r, c.want)
			if d := r.json(t)["detail"].(string); !strings.Contains(d, c.detail) {
				t.Errorf("detail %q, want it to mention %q", d, c.detail)
			}
		})
	}
	if n := len(a.storedEvents(itemsPath)); n != 0 {
		t.Fatalf("refused requests stored %d events, want 0", n)
	}
}

func TestChunkedBodyOverTheLimitIsRefusedWith413(t *testing.T) {
	a := newAPI(t, apiOptions{maxEventBytes: 1024})
	req, err := http.NewRequest(http.MethodPost, a.server.URL+itemsPath,
		strings.NewReader(`{"foo":"`+strings.Repeat("x", 4096)+`"}`))
	must(t, err)
	req.ContentLength = -1 // sent chunked: the size is unknown until read
	req.Header.Set("Content-Type", "application/json")
	expectStatus(t, a.send(req), http.StatusRequestEntityTooLarge)
}

func TestFullOutboxAnswers503WithRetryAfterAndStoresNothing(t *testing.T) {
	a := newAPI(t, apiOptions{outboxCapacity: 2, notRunning: true})
	for i := range 2 {
		expectStatus(t, a.post(itemsPath, "application/json", fmt.Sprintf(`{"n":%d}`, i)), http.StatusAccepted)
	}
	r := a.post(itemsPath, "application/json", `{"n":3}`)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if got := a.engine.Stats().OutboxPending; got != 2 {
		t.Fatalf("outbox holds %d events, want the 2 accepted", got)
	}
}

// fullOnce is the engine, telling full when an Ingest found the outbox full.
type fullOnce struct {
	*core.Engine
	full chan struct{}
	once sync.Once
}

func (f *fullOnce) IngestIf(ctx context.Context, stream string, events []core.Event, expect versions.Expect) ([]engine.Message, error) {
	msgs, err := f.Engine.IngestIf(ctx, stream, events, expect)
	if errors.Is(err, outbox.ErrFull) {
		f.once.Do(func() { close(f.full) })
	}
	return msgs, err
}

func TestIngestIntoAFullOutboxWaitsForTheProcessorToMakeRoom(t *testing.T) {
	a := newAPI(t, apiOptions{outboxCapacity: 2, notRunning: true})
	for i := range 2 {
		expectStatus(t, a.post(itemsPath, "application/json", fmt.Sprintf(`{"n":%d}`, i)), http.StatusAccepted)
	}
	e := &fullOnce{Engine: a.engine, full: make(chan struct{})}
	h, err := httpapi.NewHandler(httpapi.Config{Engine: e, FullOutboxWait: time.Minute, Log: logr.Discard()})
	must(t, err)
	answered := make(chan int, 1)
	go func() {
		req := httptest.NewRequest(http.MethodPost, itemsPath, strings.NewReader(`{"n":3}`))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		answered <- w.Code
	}()
	select { // the request is waiting for room; now start the processor
	case <-e.full:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never found the outbox full")
	}
	enginebench.RunEngine(t, a.engine)
	if code := <-answered; code != http.StatusAccepted {
		t.Fatalf("status %d, want 202 once the processor drained the outbox", code)
	}
	a.waitStored(itemsPath, 3)
}

func TestWrongMethodAndUnknownPathAreProblems(t *testing.T) {
	a := newAPI(t, apiOptions{})
	r := a.do(http.MethodDelete, itemsPath, "", nil)
	expectStatus(t, r, http.StatusMethodNotAllowed)
	if got := r.header.Get("Allow"); got != "GET, HEAD, POST" {
		t.Errorf("Allow %q, want \"GET, HEAD, POST\"", got)
	}
	expectStatus(t, a.post(itemsQuery, "application/json", `{}`), http.StatusMethodNotAllowed)
	expectStatus(t, a.get("/v2/anything"), http.StatusNotFound)
}

// denyGuard answers every check with a fixed problem: the handler must send
// it before touching the engine.
type denyGuard struct{ status int }

func (g denyGuard) Check(_ *http.Request, a httpapi.Action) (string, *httpapi.Problem) {
	return "", &httpapi.Problem{Type: "https://eventsourcing.dev/problems#denied", Title: http.StatusText(g.status),
		Status: g.status, Detail: fmt.Sprintf("%s %s/%s %s/%s denied", a.Verb, a.Resource, a.Subresource, a.Namespace, a.Name)}
}

func TestGuardRefusalIsAnsweredBeforeAnythingIsStored(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		a := newAPI(t, apiOptions{guard: denyGuard{status}})
		for _, r := range []response{
			a.post(itemsPath, "application/json", `{"foo":"a"}`),
			a.post("/v1/namespaces/team-a/streams/nope/events", "application/json", `{}`), // existence is not revealed
			a.get(itemsPath),
			a.get(itemsQuery),
		} {
			expectStatus(t, r, status)
		}
		if got := a.engine.Stats().OutboxPending; got != 0 {
			t.Fatalf("a refused request reached the outbox (%d pending)", got)
		}
	}
}

func TestGuardIsAskedForTheActionOfEachEndpoint(t *testing.T) {
	a := newAPI(t, apiOptions{guard: denyGuard{http.StatusForbidden}})
	for _, c := range []struct {
		r    response
		want string
	}{
		{a.post(itemsPath, "application/json", `{}`), "create streams/events team-a/items-events"},
		{a.get(itemsPath), "get streams/events team-a/items-events"},
		{a.get(itemsQuery), "get projections/state team-a/items"},
	} {
		if d := c.r.json(t)["detail"]; d != c.want+" denied" {
			t.Errorf("guard asked %q, want %q", d, c.want+" denied")
		}
	}
}

func TestPostingTheSameIDTwiceStoresItOnceAndAnswers202Both(t *testing.T) {
	a := newAPI(t, apiOptions{})
	for _, header := range []string{"ce-id", "Idempotency-Key"} {
		id := "order-1-" + header
		for range 2 {
			r := a.post(itemsPath, "application/json", `{"foo":"a","n":1}`, header, id)
			expectStatus(t, r, http.StatusAccepted)
			if got := r.json(t)["id"]; got != id {
				t.Fatalf("answer id %v, want %s", got, id)
			}
		}
	}
	expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"z","n":9}`), http.StatusAccepted)
	events := a.waitStored(itemsPath, 3)
	if events[0]["id"] != "order-1-ce-id" || events[1]["id"] != "order-1-Idempotency-Key" {
		t.Fatalf("stored ids %v, %v; want the posted ids once each", events[0]["id"], events[1]["id"])
	}
}

func TestEventNameComesFromCETypeThenNameParameterThenTheStreamDefault(t *testing.T) {
	a := newAPI(t, apiOptions{})
	expectStatus(t, a.post(itemsPath+"?name=FromQuery", "application/json", `{}`, "ce-type", "FromHeader"), http.StatusAccepted)
	expectStatus(t, a.post(itemsPath+"?name=FromQuery", "application/json", `{}`), http.StatusAccepted)
	expectStatus(t, a.post(itemsPath, "application/json", `{}`), http.StatusAccepted)
	events := a.waitStored(itemsPath, 3)
	for i, want := range []string{"FromHeader", "FromQuery", "ItemCreated"} {
		if events[i]["name"] != want {
			t.Errorf("event %d name %v, want %s", i, events[i]["name"], want)
		}
	}
}

// The CloudEvents SDKs post in binary mode: attributes as ce-* headers.
func TestCloudEventsBinaryModeKeepsAttributesAsHeaders(t *testing.T) {
	a := newAPI(t, apiOptions{})
	r := a.post(itemsPath, "application/json", `{"foo":"a","n":1}`,
		"ce-specversion", "1.0", "ce-id", "evt-1", "ce-type", "com.example.item.created",
		"ce-source", "/shop/checkout", "ce-subject", "item/a", "ce-time", "2026-11-25T10:00:00Z",
		"ce-traceparent", "00-abc-def-01", "X-Correlation-ID", "corr-7")
	expectStatus(t, r, http.StatusAccepted)
	ev := a.waitStored(itemsPath, 1)[0]
	if ev["id"] != "evt-1" || ev["name"] != "com.example.item.created" || ev["correlationId"] != "corr-7" {
		t.Fatalf("stored id/name/correlation %v/%v/%v, want evt-1/com.example.item.created/corr-7",
			ev["id"], ev["name"], ev["correlationId"])
	}
	headers := ev["headers"].(map[string]any)
	for k, want := range map[string]string{
		"ce-specversion": "1.0", "ce-source": "/shop/checkout", "ce-subject": "item/a",
		"ce-time": "2026-11-25T10:00:00Z", "ce-traceparent": "00-abc-def-01",
	} {
		if headers[k] != want {
			t.Errorf("header %s = %v, want %s", k, headers[k], want)
		}
	}
	if _, ok := headers["ce-id"]; ok {
		t.Error("ce-id kept as a header; it is the event's id")
	}
}

func TestStreamReadShowsAvroAndProtobufPayloadsAsJSON(t *testing.T) {
	a := newAPI(t, apiOptions{})
	expectStatus(t, a.do(http.MethodPost, itemsPath, "application/avro", avroItem(t, "a", 1)), http.StatusAccepted)
	expectStatus(t, a.do(http.MethodPost, itemsPath, "application/x-protobuf", protoItem(t, "b", 2)), http.StatusAccepted)
	events := a.waitStored(itemsPath, 2)
	for i, want := range []map[string]any{{"foo": "a", "n": float64(1)}, {"foo": "b", "n": float64(2)}} {
		got := events[i]["payload"].(map[string]any)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("event %d payload %v, want %v", i, got, want)
		}
		if _, ok := events[i]["payloadBase64"]; ok {
			t.Errorf("event %d has payloadBase64 though it decodes", i)
		}
	}
}
