package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

// Page sizes of stream reads.
const (
	defaultReadLimit = 100
	maxReadLimit     = 1000
)

// streamPage is the answer to a stream read.
type streamPage struct {
	Events []eventView `json:"events"`
	// Next is the ?after= of the following page: the last sequence returned
	// (filtered by ?name=: looked at), or the request's after when there was
	// nothing new.
	Next uint64 `json:"next"`
}

// eventView is one stored event as JSON. Payloads are shown decoded; one
// that no longer decodes (its stream's schema changed) is shown as
// payloadBase64 with payload null.
type eventView struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	Sequence      uint64            `json:"sequence"`
	Key           string            `json:"key,omitempty"`
	Version       uint64            `json:"version,omitempty"`
	Position      uint64            `json:"position,omitempty"`
	Time          time.Time         `json:"time"`
	Headers       map[string]string `json:"headers"`
	CorrelationID string            `json:"correlationId,omitempty"`
	CausationID   string            `json:"causationId,omitempty"`
	ContentType   string            `json:"contentType"`
	Payload       json.RawMessage   `json:"payload"`
	PayloadBase64 string            `json:"payloadBase64,omitempty"`
}

// Limits of the read parameters.
const (
	// maxWait bounds ?wait= of a long poll.
	maxWait = 60 * time.Second
	// nameScanLimit bounds the events a read filtered by ?name= looks at:
	// a rare name must not make one request walk a whole stream.
	nameScanLimit = 10000
)

// readParams are the query parameters of a stream or key read.
type readParams struct {
	after uint64
	limit int
	// name keeps only events of that name (stream reads).
	name string
	// wait is how long a plain read with nothing new waits for an event.
	wait time.Duration
}

// read serves GET .../streams/{stream}/events?after=N&limit=M&name=E&wait=D,
// or a live read when the request accepts text/event-stream.
func (h *Handler) read(w http.ResponseWriter, r *http.Request, ns, stream string) *Problem {
	rp, p := parseReadParams(r)
	if p != nil {
		return p
	}
	if wantsEventStream(r) {
		return h.liveStream(w, r, ns, stream, rp)
	}
	name := engineName(ns, stream)
	msgs, next, err := h.readPage(r.Context(), name, rp)
	if err == nil && len(msgs) == 0 && rp.wait > 0 {
		var arrived bool
		arrived, err = h.await(w, r, name, next, rp.wait, func(m engine.Message) bool {
			return rp.name == "" || m.Name == rp.name
		})
		if arrived {
			msgs, next, err = h.readPage(r.Context(), name, readParams{after: next, limit: rp.limit, name: rp.name})
		}
	}
	if errors.Is(err, core.ErrStreamNotFound) {
		return streamNotFound(ns, stream)
	}
	if err != nil {
		h.cfg.Log.Error(err, "read stream failed", "namespace", ns, "stream", stream)
		return newProblem(http.StatusInternalServerError, kindInternal, "the stream could not be read")
	}
	page := streamPage{Events: make([]eventView, len(msgs)), Next: next}
	for i, m := range msgs {
		page.Events[i] = view(m)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// readPage returns up to rp.limit events after rp.after and the page's next:
// the sequence of the last event it returned or, with a name filter, of the
// last event it looked at (at most nameScanLimit of them), so that the next
// page neither misses an event nor looks at one twice.
func (h *Handler) readPage(ctx context.Context, stream string, rp readParams) ([]engine.Message, uint64, error) {
	if rp.name == "" {
		msgs, err := h.cfg.Engine.ReadStream(ctx, stream, rp.after, rp.limit)
		if err != nil || len(msgs) == 0 {
			return msgs, rp.after, err
		}
		return msgs, msgs[len(msgs)-1].Sequence, nil
	}
	var out []engine.Message
	next := rp.after
	for scanned := 0; scanned < nameScanLimit; {
		msgs, err := h.cfg.Engine.ReadStream(ctx, stream, next, min(maxReadLimit, nameScanLimit-scanned))
		if err != nil {
			return nil, 0, err
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			scanned++
			next = m.Sequence
			if m.Name != rp.name {
				continue
			}
			if out = append(out, m); len(out) == rp.limit {
				return out, next, nil
			}
		}
	}
	return out, next, nil
}

// await waits up to wait for a stored event of stream after the sequence
// from that match accepts, and reports whether one came. It gives up, with
// no error, when the client goes or the server shuts down.
func (h *Handler) await(w http.ResponseWriter, r *http.Request, stream string, from uint64, wait time.Duration,
	match func(engine.Message) bool) (bool, error) {
	rc := http.NewResponseController(w)
	// The server's read and write timeouts run from the request's start; a
	// read timeout would cancel the request. Unsupported (httptest
	// recorders) only means there is no deadline to move.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(wait + writeTimeout))
	ctx, cancel := untilShutdown(r)
	defer cancel()
	ctx, cancelWait := context.WithTimeout(ctx, wait)
	defer cancelWait()
	sub, err := h.cfg.Engine.Subscribe(ctx, stream, from)
	if err != nil {
		return false, err
	}
	defer func() { _ = sub.Close() }()
	for {
		m, err := sub.Next(ctx)
		switch {
		case ctx.Err() != nil:
			return false, nil
		case err != nil:
			return false, err
		case match(m):
			return true, nil
		}
	}
}

// parseReadParams reads ?after=, ?limit=, ?name= and ?wait= of a read.
func parseReadParams(r *http.Request) (readParams, *Problem) {
	q := r.URL.Query()
	after, err := queryUint(q.Get("after"), 0, 1<<63)
	if err != nil {
		return readParams{}, newProblem(http.StatusBadRequest, kindInvalidRequest, "after: "+err.Error())
	}
	n, err := queryUint(q.Get("limit"), defaultReadLimit, maxReadLimit)
	if err != nil || n == 0 {
		return readParams{}, newProblem(http.StatusBadRequest, kindInvalidRequest,
			fmt.Sprintf("limit: want a number of events from 1 to %d", maxReadLimit))
	}
	rp := readParams{after: after, limit: int(n), name: q.Get("name")}
	if q.Has("name") && rp.name == "" {
		return readParams{}, newProblem(http.StatusBadRequest, kindInvalidRequest, "name: want an event name, got nothing")
	}
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > maxWait {
			return readParams{}, newProblem(http.StatusBadRequest, kindInvalidRequest,
				fmt.Sprintf("wait: want a duration from 0s to %s (such as 30s), got %q", maxWait, s))
		}
		rp.wait = d
	}
	return rp, nil
}

func view(m engine.Message) eventView {
	v := eventView{
		ID: m.ID, Name: m.Name, Sequence: m.Sequence, Key: m.Key, Version: m.Version, Position: m.Position,
		Time: m.Time, Headers: m.Headers,
		CorrelationID: m.CorrelationID, CausationID: m.CausationID, ContentType: m.ContentType,
	}
	if v.Headers == nil {
		v.Headers = map[string]string{}
	}
	switch {
	case m.Value != nil && serde.NormalizeContentType(m.ContentType) == serde.JSON:
		v.Payload = m.Payload // it decoded, so it is JSON: keep its exact text
	case m.Value != nil:
		if b, err := json.Marshal(m.Value); err == nil {
			v.Payload = b
			break
		}
		fallthrough
	default:
		v.Payload = json.RawMessage("null")
		v.PayloadBase64 = base64.StdEncoding.EncodeToString(m.Payload)
	}
	return v
}

// queryUint parses an optional non-negative query parameter.
func queryUint(s string, def, maximum uint64) (uint64, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maximum {
		return 0, fmt.Errorf("want a whole number from 0 to %d, got %q", maximum, s)
	}
	return n, nil
}

// query serves GET .../projections/{projection}: the read model document.
func (h *Handler) query(w http.ResponseWriter, r *http.Request, ns, projection string) *Problem {
	doc, err := h.cfg.Engine.Query(r.Context(), engineName(ns, projection))
	if errors.Is(err, core.ErrProjectionNotFound) {
		return newProblem(http.StatusNotFound, kindNotFound, fmt.Sprintf("no projection %q in namespace %q", projection, ns))
	}
	if err != nil {
		h.cfg.Log.Error(err, "query failed", "namespace", ns, "projection", projection)
		return newProblem(http.StatusInternalServerError, kindInternal, "the read model could not be read")
	}
	writeRawJSON(w, http.StatusOK, doc)
	return nil
}
