// Package httpapi serves the engine over HTTP (docs/http-api.md): ingest
// (single events in any of a stream's formats, NDJSON and CloudEvents
// batches), stream and key reads (paged, long-polled or live as
// Server-Sent Events) and read-model queries, each checked by a Guard.
// Every error is an RFC 9457 problem+json document.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/tracing"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// Engine is what the API needs of the engine.
type Engine interface {
	IngestIf(ctx context.Context, stream string, events []core.Event, expect versions.Expect) ([]engine.Message, error)
	ReadStream(ctx context.Context, stream string, after uint64, limit int) ([]engine.Message, error)
	ReadKey(ctx context.Context, stream, key string, after uint64, limit int) ([]engine.Message, uint64, error)
	Subscribe(ctx context.Context, stream string, after uint64) (*core.Subscription, error)
	LastSequence(ctx context.Context, stream string) (uint64, error)
	Query(ctx context.Context, projection string) ([]byte, error)
	QueryKey(ctx context.Context, projection, key string) ([]byte, error)
	RedriveProjection(ctx context.Context, projection string, ids []string) (int, error)
	RedriveReactor(ctx context.Context, reactor string, ids []string) (int, error)
	StreamNames() []string
	ProjectionNames() []string
	ReactorNames() []string
	StreamStats(ctx context.Context, stream string) (core.StreamStats, error)
	ProjectionStats(ctx context.Context, projection string) (core.ProjectionStats, error)
	ReactorStats(ctx context.Context, reactor string) (core.ReactorStats, error)
}

// Defaults of Config.
const (
	DefaultMaxEventBytes   = 1 << 20
	DefaultMaxRequestBytes = 16 << 20
	DefaultMaxBatchEvents  = 1000
	DefaultFullOutboxWait  = 250 * time.Millisecond
	DefaultLiveHeartbeat   = 15 * time.Second
	DefaultLiveBuffer      = 1024
	DefaultLiveWriteWait   = 10 * time.Second
)

// Config configures the API handler.
type Config struct {
	Engine Engine
	// Guard checks every request; nil means AllowAll.
	Guard Guard
	// MaxEventBytes bounds one event's payload: a single-event body, or one
	// event of a batch (default 1 MiB, the manager's --max-event-bytes).
	MaxEventBytes int64
	// MaxRequestBytes bounds a batch request's body (default 16 MiB, and
	// never less than MaxEventBytes).
	MaxRequestBytes int64
	// MaxBatchEvents bounds the events of one batch request (default 1000).
	// It must stay below the outbox's capacity: a batch is enqueued all or
	// none, so a larger one could never fit.
	MaxBatchEvents int
	// FullOutboxWait is how long an ingest waits for room in a full outbox
	// before answering 503 (default 250ms; negative: answer 503 at once).
	// The processor drains a full outbox in milliseconds, so a burst is
	// absorbed as latency; a stalled processor still gets a quick 503.
	FullOutboxWait time.Duration
	// LiveHeartbeat is the interval of the comment lines that keep an idle
	// live read open through proxies (default 15s).
	LiveHeartbeat time.Duration
	// LiveBuffer bounds the events a live read holds for its reader
	// (default 1024): an event appended while it is full means the reader
	// cannot keep up, and it is disconnected.
	LiveBuffer int
	// LiveWriteWait bounds one write to a live reader (default 10s): a
	// reader that takes nothing for that long is disconnected.
	LiveWriteWait time.Duration
	// Metrics, when set, counts and times ingest requests per stream.
	Metrics *metrics.Metrics
	// LeaderFigures, when set, gives the lists of a replica that does not
	// lead the counters of the handlers the leader runs; without it they
	// are null there.
	LeaderFigures LeaderFigures
	Log           logr.Logger
	// TracerProvider gets the server span of each ingest, whose context
	// the events keep (see package tracing); nil is otel.GetTracerProvider().
	// With the no-op provider no span is started.
	TracerProvider trace.TracerProvider
}

func (c *Config) setDefaults() {
	if c.Guard == nil {
		c.Guard = AllowAll{}
	}
	if c.MaxEventBytes <= 0 {
		c.MaxEventBytes = DefaultMaxEventBytes
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	c.MaxRequestBytes = max(c.MaxRequestBytes, c.MaxEventBytes)
	if c.MaxBatchEvents <= 0 {
		c.MaxBatchEvents = DefaultMaxBatchEvents
	}
	if c.FullOutboxWait == 0 {
		c.FullOutboxWait = DefaultFullOutboxWait
	}
	if c.LiveHeartbeat <= 0 {
		c.LiveHeartbeat = DefaultLiveHeartbeat
	}
	if c.LiveBuffer <= 0 {
		c.LiveBuffer = DefaultLiveBuffer
	}
	if c.LiveWriteWait <= 0 {
		c.LiveWriteWait = DefaultLiveWriteWait
	}
}

// Handler serves the HTTP API.
type Handler struct {
	cfg    Config
	mux    *http.ServeMux
	tracer trace.Tracer // nil: tracing is off
}

// NewHandler returns the API's handler.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Engine == nil {
		return nil, errors.New("httpapi: Config.Engine is required")
	}
	cfg.setDefaults()
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), tracer: tracing.Tracer(cfg.TracerProvider)}
	for _, rt := range h.routes() {
		h.mux.HandleFunc(rt.pattern, rt.serve)
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		newProblem(http.StatusNotFound, kindNotFound,
			"no such path: "+openAPIPath+" describes the paths the API serves").write(w, r)
	})
	return h, nil
}

// route is a path the API serves and the handler of each method it serves
// there. Patterns have no method, so that another method gets a
// problem+json 405 from us rather than ServeMux's plain-text one.
type route struct {
	pattern string
	methods map[string]http.HandlerFunc
}

// routes are the paths NewHandler serves. The OpenAPI document describes
// every route under /v1/ and nothing else
// (TestOpenAPIDescribesEveryRouteAndNothingElse); a route outside /v1/
// (the console) is not part of the API it describes.
func (h *Handler) routes() []route {
	get := func(f http.HandlerFunc) map[string]http.HandlerFunc {
		return map[string]http.HandlerFunc{http.MethodGet: f}
	}
	return []route{
		{openAPIPath, get(serveOpenAPI)},
		{"/v1/namespaces/{namespace}/streams", get(h.listStreams)},
		{"/v1/namespaces/{namespace}/projections", get(h.listProjections)},
		{"/v1/namespaces/{namespace}/reactors", get(h.listReactors)},
		{"/v1/namespaces/{namespace}/streams/{stream}/events", map[string]http.HandlerFunc{
			http.MethodGet: h.streamEventsGet, http.MethodPost: h.streamEventsPost,
		}},
		{"/v1/namespaces/{namespace}/streams/{stream}/keys/{key}/events", map[string]http.HandlerFunc{
			http.MethodGet: h.keyEventsGet, http.MethodPost: h.keyEventsPost,
		}},
		{"/v1/namespaces/{namespace}/projections/{projection}", get(h.projection)},
		{projectionKeyPattern, get(h.projectionKey)},
		{"/v1/namespaces/{namespace}/projections/{projection}/redrive", map[string]http.HandlerFunc{
			http.MethodPost: h.redriveRoute("projection", redriveProjectionAction, h.cfg.Engine.RedriveProjection, core.ErrProjectionNotFound),
		}},
		{"/v1/namespaces/{namespace}/reactors/{reactor}/redrive", map[string]http.HandlerFunc{
			http.MethodPost: h.redriveRoute("reactor", redriveReactorAction, h.cfg.Engine.RedriveReactor, core.ErrReactorNotFound),
		}},
	}
}

// serve runs the handler of the request's method, or answers 405. HEAD
// runs GET's handler: net/http sends its status and headers and drops the
// body (a live read ends once its headers are out).
func (rt route) serve(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if f, ok := rt.methods[method]; ok {
		f(w, r)
		return
	}
	allow := slices.Collect(maps.Keys(rt.methods))
	if rt.methods[http.MethodGet] != nil {
		allow = append(allow, http.MethodHead)
	}
	slices.Sort(allow)
	methodNotAllowed(w, r, strings.Join(allow, ", "))
}

// ServeHTTP serves r, turning a panic into a 500 problem so that no input
// can take the server down or leave a client without an answer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // net/http panics with this exact value
				panic(v)
			}
			h.cfg.Log.Error(fmt.Errorf("panic: %v", v), "request handler panicked", "method", r.Method, "path", r.URL.Path)
			newProblem(http.StatusInternalServerError, kindInternal, "the server failed; the event was not accepted").write(w, r)
		}
	}()
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) streamEventsGet(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, r.PathValue("namespace"), r.PathValue("stream"), "stream", readAction, h.read)
}

func (h *Handler) streamEventsPost(w http.ResponseWriter, r *http.Request) {
	h.serveIngest(w, r, r.PathValue("namespace"), r.PathValue("stream"), h.ingest)
}

func (h *Handler) projection(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, r.PathValue("namespace"), r.PathValue("projection"), "projection", queryAction, h.query)
}

// serve checks the names and the caller, then runs the endpoint; a problem
// the endpoint returns is written as the answer. It returns the status of
// the problem it wrote, 0 when the endpoint answered.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, ns, name, kind string,
	action func(ns, name string) Action, endpoint func(http.ResponseWriter, *http.Request, string, string) *Problem) int {
	// A name Kubernetes would refuse cannot exist, so it is a 404 like any
	// other missing object (checked first: it reveals nothing).
	if len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		p := newProblem(http.StatusNotFound, kindNotFound,
			fmt.Sprintf("no %s %q in namespace %q: not a valid Kubernetes name", kind, name, ns))
		p.write(w, r)
		return p.Status
	}
	user, p := h.cfg.Guard.Check(r, action(ns, name))
	if p == nil {
		p = endpoint(w, withUser(r, user), ns, name)
	}
	if p == nil {
		return 0
	}
	p.write(w, r)
	return p.Status
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	newProblem(http.StatusMethodNotAllowed, kindMethodNotAllowed,
		fmt.Sprintf("%s is not served here; use %s", r.Method, allow)).write(w, r)
}

// engineName is the engine's name of a namespaced object.
func engineName(ns, name string) string { return ns + "/" + name }
