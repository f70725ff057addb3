package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/cloudevents"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// Content types of batch requests and CloudEvents' structured mode.
const (
	contentTypeNDJSON       = "application/x-ndjson"
	contentTypeCEBatch      = cloudevents.ContentTypeBatch
	contentTypeCEStructured = cloudevents.ContentTypeStructured
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

// accepted is the 202 answer to a single event. Key and version are those
// of a keyed event.
type accepted struct {
	Accepted bool   `json:"accepted"`
	ID       string `json:"id"`
	Stream   string `json:"stream"`
	Key      string `json:"key,omitempty"`
	Version  uint64 `json:"version,omitempty"`
}

// acceptedBatch is the 202 answer to a batch, ids in request order; key and
// version are those of its last event when that one is keyed.
type acceptedBatch struct {
	Accepted bool     `json:"accepted"`
	Stream   string   `json:"stream"`
	Count    int      `json:"count"`
	IDs      []string `json:"ids"`
	Key      string   `json:"key,omitempty"`
	Version  uint64   `json:"version,omitempty"`
}

// ingest serves POST .../streams/{stream}/events.
func (h *Handler) ingest(w http.ResponseWriter, r *http.Request, ns, stream string) *Problem {
	return h.ingestInto(w, r, ns, stream, "")
}

// ingestInto ingests the request's events; a non-empty key (of the
// .../keys/{key}/events path) is the key of every one of them.
func (h *Handler) ingestInto(w http.ResponseWriter, r *http.Request, ns, stream, key string) *Problem {
	span := h.newIngestSpan(r, ns, stream, key)
	p := h.ingestTraced(w, r, &span, ns, stream, key)
	span.end(p)
	return p
}

// ingestTraced is ingestInto within span, which it starts once the events
// are read.
func (h *Handler) ingestTraced(w http.ResponseWriter, r *http.Request, span *ingestSpan, ns, stream, key string) *Problem {
	expect, p := appendCondition(r)
	if p != nil {
		return p
	}
	ct := requestContentType(r)
	var (
		events []core.Event
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
	if p := setKeys(events, key); p != nil {
		return p
	}
	recordPoster(events, userOf(r.Context()))
	ctx := span.start(events)
	msgs, err := h.ingestWaitingForRoom(ctx, engineName(ns, stream), events, expect)
	if err != nil {
		return h.ingestProblem(ctx, err, ns, stream, ct)
	}
	last := msgs[len(msgs)-1]
	if last.Key != "" && sameKey(msgs) {
		w.Header().Set("ETag", etag(last.Version))
	}
	if !batch {
		writeJSON(w, http.StatusAccepted, accepted{Accepted: true, ID: last.ID, Stream: stream, Key: last.Key, Version: last.Version})
		return nil
	}
	ids := make([]string, len(msgs))
	for i := range msgs {
		ids[i] = msgs[i].ID
	}
	writeJSON(w, http.StatusAccepted, acceptedBatch{
		Accepted: true, Stream: stream, Count: len(ids), IDs: ids, Key: last.Key, Version: last.Version,
	})
	return nil
}

// HeaderUser is the event header naming who posted the event: the user
// name the Kubernetes API gave the request's bearer token.
const HeaderUser = core.HeaderUser

// recordPoster sets each event's HeaderUser to user, the poster the Guard
// authenticated, or removes it when the request was not authenticated
// (user empty): the header is never the client's word. A client's
// CloudEvents attribute of that name (kept as ce-x-eventsourcing-user)
// is removed too, so that no event claims a poster the API did not check.
func recordPoster(events []core.Event, user string) {
	var stamped map[string]string // one map for the events that have no headers; Ingest copies each
	for i := range events {
		ev := &events[i]
		switch {
		case ev.Headers != nil:
			delete(ev.Headers, HeaderUser)
			delete(ev.Headers, "ce-"+HeaderUser)
			if user != "" {
				ev.Headers[HeaderUser] = user
			}
		case user != "":
			if stamped == nil {
				stamped = map[string]string{HeaderUser: user}
			}
			ev.Headers = stamped
		}
	}
}

// setKeys gives every event the path's key, refusing an event whose own
// key (a CloudEvent's partitionkey) names another. Ingest checks the keys
// against the key rules.
func setKeys(events []core.Event, key string) *Problem {
	if key == "" {
		return nil
	}
	for i := range events {
		ev := &events[i]
		if ev.Key != "" && ev.Key != key {
			p := newProblem(http.StatusBadRequest, kindInvalidRequest,
				fmt.Sprintf("event %d: its partitionkey %q is not the path's key %q", i, ev.Key, key))
			p.Index = intPtr(i)
			return p
		}
		ev.Key = key
	}
	return nil
}

func sameKey(msgs []engine.Message) bool {
	for i := range msgs {
		if msgs[i].Key != msgs[0].Key {
			return false
		}
	}
	return true
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
		Key:           r.Header.Get("Ce-Partitionkey"),
		ContentType:   ct,
		Headers:       cloudevents.HeaderAttributes(r.Header),
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
func (h *Handler) ingestWaitingForRoom(
	ctx context.Context, stream string, events []core.Event, expect versions.Expect,
) ([]engine.Message, error) {
	msgs, err := h.cfg.Engine.IngestIf(ctx, stream, events, expect)
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
		msgs, err = h.cfg.Engine.IngestIf(ctx, stream, events, expect)
	}
	return msgs, err
}

// ingestProblem turns an Ingest error into the answer docs/http-api.md gives for it.
func (h *Handler) ingestProblem(ctx context.Context, err error, ns, stream, ct string) *Problem {
	var payloadErr *core.PayloadError
	var conflict *versions.ConflictError
	switch {
	case errors.As(err, &conflict):
		return versionConflict(conflict)
	case errors.Is(err, versions.ErrConditionNeedsOneKey):
		return badCondition(err.Error() + " (use .../keys/{key}/events, or give every CloudEvent the same partitionkey)")
	case errors.Is(err, core.ErrStreamNotFound):
		return streamNotFound(ns, stream)
	case errors.Is(err, serde.ErrUnsupportedContentType):
		return newProblem(http.StatusUnsupportedMediaType, kindUnsupportedType, unsupportedDetail(err, ct))
	case errors.As(err, &payloadErr):
		kind := kindInvalidPayload
		if errors.Is(err, core.ErrInvalidKey) {
			kind = kindInvalidRequest
		}
		p := newProblem(http.StatusBadRequest, kind, err.Error())
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
	case errors.Is(err, eventstore.ErrUnavailable):
		p := newProblem(http.StatusServiceUnavailable, kindUnavailable,
			"the event store cannot be reached for now: the events may or may not be stored; "+
				"retry with the same ids (Idempotency-Key) and they are stored once")
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
