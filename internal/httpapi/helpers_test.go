package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/hamba/avro/v2"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
)

const (
	itemSchema = `{"type":"record","name":"Item","fields":[{"name":"foo","type":"string"},{"name":"n","type":"int"}]}`
	ns         = "team-a"
	itemsPath  = "/v1/namespaces/team-a/streams/items-events/events"
	itemsQuery = "/v1/namespaces/team-a/projections/items"
)

// api is a real engine behind the real handler, as the manager wires them:
// stream team-a/items-events accepts JSON, Avro and Protobuf (Struct), and
// projection team-a/items appends every payload under the key "items". A
// JSON-only stream team-a/json-only has no default event name.
type api struct {
	t      *testing.T
	engine *core.Engine
	server *httptest.Server
}

type apiOptions struct {
	guard httpapi.Guard
	// outboxCapacity, when set, bounds the outbox; notRunning leaves the
	// processor stopped, so the outbox fills.
	outboxCapacity int
	notRunning     bool
	// standby builds the engine of a replica that does not lead
	// (core.Config.Standby), not running.
	standby bool
	// appender stores what ingest accepts (core.Config.Appender).
	appender      core.Appender
	maxEventBytes int64
	maxBatch      int
	// live configures live reads; smallSocketBuffers shrinks the server's
	// send buffers so that a reader that stops reading blocks its writer.
	live               httpapi.Config
	smallSocketBuffers bool
	// metrics, when set, are the engine's and the handler's.
	metrics *metrics.Metrics
	// tracerProvider gets the engine's and the handler's spans.
	tracerProvider trace.TracerProvider
	// leaderFigures gives a standby replica's lists the leader's counters.
	leaderFigures httpapi.LeaderFigures
}

func newAPI(t *testing.T, opts apiOptions) *api {
	t.Helper()
	cfg := core.Config{PollingInterval: 10 * time.Millisecond, AllowPrivateSinks: true}
	if opts.outboxCapacity > 0 {
		cfg.Outbox = outbox.NewMemory(opts.outboxCapacity)
	}
	cfg.Standby = opts.standby
	cfg.Appender = opts.appender
	cfg.Metrics = opts.metrics
	cfg.TracerProvider = opts.tracerProvider
	e, err := core.New(cfg)
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	must(t, e.ApplyStream(core.StreamSpec{
		Name:             ns + "/items-events",
		ContentTypes:     []string{serde.JSON, serde.Avro, serde.Protobuf},
		DefaultEventName: "ItemCreated",
		Schema:           serde.Schema{Avro: itemSchema, ProtobufMessageType: "google.protobuf.Struct"},
		DeadLetterStream: ns + "/dead",
	}))
	must(t, e.ApplyStream(core.StreamSpec{Name: ns + "/json-only"}))
	must(t, e.ApplyProjection(context.Background(), core.ProjectionSpec{Spec: projection.Spec{
		Name: ns + "/items", Streams: []string{ns + "/items-events"}, Type: projection.Append, Key: "items",
	}}))
	t.Cleanup(func() { _ = e.Close() }) // after Run has returned (cleanups run last first)
	if !opts.notRunning && !opts.standby {
		enginebench.RunEngine(t, e)
	}
	h, err := httpapi.NewHandler(httpapi.Config{
		Engine: e, Guard: opts.guard, MaxEventBytes: opts.maxEventBytes, MaxBatchEvents: opts.maxBatch, Log: logr.Discard(),
		LiveHeartbeat: opts.live.LiveHeartbeat, LiveBuffer: opts.live.LiveBuffer, LiveWriteWait: opts.live.LiveWriteWait,
		Metrics:        opts.metrics,
		TracerProvider: opts.tracerProvider,
		LeaderFigures:  opts.leaderFigures,
	})
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	srv := httptest.NewUnstartedServer(h)
	if opts.smallSocketBuffers {
		srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			if tcp, ok := c.(*net.TCPConn); ok {
				if err := tcp.SetWriteBuffer(4096); err != nil {
					t.Errorf("shrink the send buffer: %v", err)
				}
			}
			return ctx
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return &api{t: t, engine: e, server: srv}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// response is an answer, its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v\n%s", r.status, err, r.body)
	}
	return v
}

// do sends a request; headers alternate names and values.
func (a *api) do(method, path, contentType string, body []byte, headers ...string) response {
	a.t.Helper()
	req, err := http.NewRequest(method, a.server.URL+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return a.send(req)
}

func (a *api) send(req *http.Request) response {
	a.t.Helper()
	resp, err := a.server.Client().Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("read answer: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func (a *api) post(path, contentType, body string, headers ...string) response {
	a.t.Helper()
	return a.do(http.MethodPost, path, contentType, []byte(body), headers...)
}

func (a *api) get(path string) response {
	a.t.Helper()
	return a.do(http.MethodGet, path, "", nil)
}

// expectStatus fails unless r has the status; errors must be problem+json
// with that status in the body.
func expectStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body: %s", r.status, want, r.body)
	}
	if want < 400 {
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	p := r.json(t)
	if int(p["status"].(float64)) != want || p["type"] == "" || p["title"] == "" || p["detail"] == "" {
		t.Fatalf("problem %v: want type, title, detail and status %d", p, want)
	}
}

// readModel waits until the projection's document equals want (JSON).
func (a *api) readModel(want string) {
	a.t.Helper()
	var wantV any
	must(a.t, json.Unmarshal([]byte(want), &wantV))
	enginetest.Eventually(a.t, "the read model to be "+want, func() (bool, string) {
		r := a.get(itemsQuery)
		var got any
		if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil {
			return false, string(r.body)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(wantV)
		return bytes.Equal(g, w), string(r.body)
	})
}

// storedEvents reads a whole stream through the API.
func (a *api) storedEvents(path string) []map[string]any {
	a.t.Helper()
	r := a.get(path + "?limit=1000")
	expectStatus(a.t, r, http.StatusOK)
	var page struct {
		Events []map[string]any `json:"events"`
	}
	must(a.t, json.Unmarshal(r.body, &page))
	return page.Events
}

// waitStored waits until the stream holds n events.
func (a *api) waitStored(path string, n int) []map[string]any {
	a.t.Helper()
	var events []map[string]any
	enginetest.Eventually(a.t, fmt.Sprintf("%s to hold %d events", path, n), func() (bool, string) {
		events = a.storedEvents(path)
		return len(events) == n, fmt.Sprintf("%d events", len(events))
	})
	return events
}

func avroItem(t *testing.T, foo string, n int) []byte {
	t.Helper()
	b, err := avro.Marshal(avro.MustParse(itemSchema), map[string]any{"foo": foo, "n": n})
	must(t, err)
	return b
}

func protoItem(t *testing.T, foo string, n int) []byte {
	t.Helper()
	st, err := structpb.NewStruct(map[string]any{"foo": foo, "n": n})
	must(t, err)
	b, err := proto.Marshal(st)
	must(t, err)
	return b
}
