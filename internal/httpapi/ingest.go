package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

// Content types of batch requests and CloudEvents' structured mode.
const (
	contentTypeNDJSON       = "application/x-ndjson"
	contentTypeCEBatch      = "application/cloudevents-batch+json"
	contentTypeCEStructured = "application/cloudevents+json"
)

// formatAliases lets ?format= name a wire format briefly.
var formatAliases = map[string]string{
	"json":     serde.JSON,
	"avro":     serde.Avro,
	"protobuf": serde.Protobuf,
	"proto":    serde.Protobuf,
	"ndjson":   contentTypeNDJSON,
}

// maxIDBytes bounds event ids, names and correlation ids: they are keys,
// not payloads.
const maxIDBytes = 256

// accepted is the 202 answer to a single event.
type accepted struct {
	Accepted bool   `json:"accepted"`
	ID       string `json:"id"`
	Stream   string `json:"stream"`
}

// acceptedBatch is the 202 answer to a batch, ids in request order.
type acceptedBatch struct {
	Accepted bool     `json:"accepted"`
	Stream   string   `json:"stream"`
	Count    int      `json:"count"`
	IDs      []string `json:"ids"`
}

// ingest serves POST .../streams/{stream}/events.
func (h *Handler) ingest(w http.ResponseWriter, r *http.Request, ns, stream string) *Problem {
	ct := requestContentType(r)
	var (
		events []core.Event
		p      *Problem
		batch  = true
	)
	switch ct {
	case contentTypeNDJSON:
		events, p = h.ndjsonEvents(w, r)
	case contentTypeCEBatch:
		events, p = h.cloudEvents(w, r, true)
	case contentTypeCEStructured:
		events, p = h.cloudEvents(w, r, false)
		batch = false
	default:
		events, p = h.binaryEvent(w, r, ct)
		batch = false
	}
	if p != nil {
		return p
	}
	msgs, err := h.ingestWaitingForRoom(r.Context(), engineName(ns, stream), events)
	if err != nil {
		return h.ingestProblem(r.Context(), err, ns, stream, ct)
	}
	if !batch {
		writeJSON(w, http.StatusAccepted, accepted{Accepted: true, ID: msgs[0].ID, Stream: stream})
		return nil
	}
	ids := make([]string, len(msgs))
	for i := range msgs {
		ids[i] = msgs[i].ID
	}
	writeJSON(w, http.StatusAccepted, acceptedBatch{Accepted: true, Stream: stream, Count: len(ids), IDs: ids})
	return nil
}

// requestContentType is ?format=, else the Content-Type header, else JSON
// (a body without a type is taken as the stream's default format).
func requestContentType(r *http.Request) string {
	ct := r.URL.Query().Get("format")
	if ct == "" {
		ct = r.Header.Get("Content-Type")
	}
	if ct == "" {
		return serde.JSON
	}
	ct = serde.NormalizeContentType(ct)
	if alias, ok := formatAliases[ct]; ok {
		return alias
	}
	return ct
}

// binaryEvent is one event whose body is the payload: plain requests and
// CloudEvents' binary mode, whose ce-* headers carry the attributes.
func (h *Handler) binaryEvent(w http.ResponseWriter, r *http.Request, ct string) ([]core.Event, *Problem) {
	ev := core.Event{
		ID:            firstNonEmpty(r.Header.Get("Ce-Id"), r.Header.Get("Idempotency-Key")),
		Name:          firstNonEmpty(r.Header.Get("Ce-Type"), r.URL.Query().Get("name")),
		CorrelationID: r.Header.Get("X-Correlation-Id"),
		ContentType:   ct,
		Headers:       cloudEventHeaders(r.Header),
	}
	if p := checkKeys(ev); p != nil {
		return nil, p
	}
	body, p := readBody(w, r, h.cfg.MaxEventBytes)
	if p != nil {
		return nil, p
	}
	ev.Payload = body
	return []core.Event{ev}, nil
}

// cloudEventHeaders keeps the CloudEvents attributes sent as ce-* headers,
// other than id and type, which become the event's ID and name. Keys are
// lowercased ("ce-source"), as CloudEvents' HTTP binding writes them.
func cloudEventHeaders(hdr http.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr {
		if len(k) <= 3 || !strings.EqualFold(k[:3], "ce-") || len(v) == 0 {
			continue
		}
		key := strings.ToLower(k)
		if key == "ce-id" || key == "ce-type" {
			continue
		}
		if out == nil {
			out = make(map[string]string, 4)
		}
		out[key] = v[0]
	}
	return out
}

// checkKeys refuses ids and names too long to be keys.
func checkKeys(ev core.Event) *Problem {
	for _, f := range []struct{ what, v string }{
		{"event id (ce-id or Idempotency-Key)", ev.ID},
		{"event name (ce-type or ?name=)", ev.Name},
		{"correlation id (X-Correlation-ID)", ev.CorrelationID},
	} {
		if len(f.v) > maxIDBytes {
			return newProblem(http.StatusBadRequest, kindInvalidRequest,
				fmt.Sprintf("%s is %d bytes; at most %d", f.what, len(f.v), maxIDBytes))
		}
	}
	return nil
}

// ingestWaitingForRoom ingests, retrying while the outbox is full for up to
// FullOutboxWait (backing off from 1ms to 16ms between tries). A full
// outbox refuses before validating, so each retry costs next to nothing.
func (h *Handler) ingestWaitingForRoom(ctx context.Context, stream string, events []core.Event) ([]engine.Message, error) {
	msgs, err := h.cfg.Engine.Ingest(ctx, stream, events)
	if !errors.Is(err, outbox.ErrFull) || h.cfg.FullOutboxWait < 0 {
		return msgs, err
	}
	deadline := time.Now().Add(h.cfg.FullOutboxWait)
	pauses := backoff.Backoff{Initial: time.Millisecond, Max: 16 * time.Millisecond}
	for errors.Is(err, outbox.ErrFull) {
		pause := pauses.Next()
		if !time.Now().Add(pause).Before(deadline) {
			break
		}
		if backoff.Sleep(ctx, pause) != nil {
			return nil, err
		}
		msgs, err = h.cfg.Engine.Ingest(ctx, stream, events)
	}
	return msgs, err
}

// ingestProblem turns an Ingest error into the answer docs/http-api.md gives for it.
func (h *Handler) ingestProblem(ctx context.Context, err error, ns, stream, ct string) *Problem {
	var payloadErr *core.PayloadError
	switch {
	case errors.Is(err, core.ErrStreamNotFound):
		return streamNotFound(ns, stream)
	case errors.Is(err, serde.ErrUnsupportedContentType):
		return newProblem(http.StatusUnsupportedMediaType, kindUnsupportedType, unsupportedDetail(err, ct))
	case errors.As(err, &payloadErr):
		p := newProblem(http.StatusBadRequest, kindInvalidPayload, err.Error())
		p.Index = &payloadErr.Index
		return p
	case errors.Is(err, outbox.ErrFull):
		p := newProblem(http.StatusServiceUnavailable, kindBackpressure,
			"the outbox is full: nothing was stored; retry after the Retry-After delay")
		p.retryAfter = 1
		return p
	case errors.Is(err, core.ErrStopped):
		p := newProblem(http.StatusServiceUnavailable, kindUnavailable,
			"the server is shutting down: nothing was stored; retry once the manager is back")
		p.retryAfter = 1
		return p
	case ctx.Err() != nil:
		// The client went away; it will not read an answer.
		return newProblem(http.StatusServiceUnavailable, kindUnavailable, "the request was cancelled")
	default:
		h.cfg.Log.Error(err, "ingest failed", "namespace", ns, "stream", stream)
		return newProblem(http.StatusInternalServerError, kindInternal, "the event could not be stored")
	}
}

// unsupportedDetail explains a 415, with a hint for the classic mistake of
// `curl -d` without a Content-Type header.
func unsupportedDetail(err error, ct string) string {
	d := err.Error()
	if ct == "application/x-www-form-urlencoded" {
		d += " (curl -d sends application/x-www-form-urlencoded: add -H 'Content-Type: application/json')"
	}
	return d
}

func streamNotFound(ns, stream string) *Problem {
	return newProblem(http.StatusNotFound, kindNotFound, fmt.Sprintf("no stream %q in namespace %q", stream, ns))
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// newCorrelationID gives the events of one batch request one correlation id.
func newCorrelationID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
