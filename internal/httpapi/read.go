package httpapi

import (
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
	// Next is the ?after= of the following page: the last sequence returned,
	// or the request's after when there was nothing new.
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

// read serves GET .../streams/{stream}/events?after=N&limit=M.
func (h *Handler) read(w http.ResponseWriter, r *http.Request, ns, stream string) *Problem {
	after, limit, p := pageParams(r)
	if p != nil {
		return p
	}
	msgs, err := h.cfg.Engine.ReadStream(r.Context(), engineName(ns, stream), after, limit)
	if errors.Is(err, core.ErrStreamNotFound) {
		return streamNotFound(ns, stream)
	}
	if err != nil {
		h.cfg.Log.Error(err, "read stream failed", "namespace", ns, "stream", stream)
		return newProblem(http.StatusInternalServerError, kindInternal, "the stream could not be read")
	}
	page := streamPage{Events: make([]eventView, len(msgs)), Next: after}
	for i, m := range msgs {
		page.Events[i] = view(m)
		page.Next = m.Sequence
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// pageParams reads ?after= and ?limit= of a read.
func pageParams(r *http.Request) (after uint64, limit int, p *Problem) {
	q := r.URL.Query()
	after, err := queryUint(q.Get("after"), 0, 1<<63)
	if err != nil {
		return 0, 0, newProblem(http.StatusBadRequest, kindInvalidRequest, "after: "+err.Error())
	}
	n, err := queryUint(q.Get("limit"), defaultReadLimit, maxReadLimit)
	if err != nil || n == 0 {
		return 0, 0, newProblem(http.StatusBadRequest, kindInvalidRequest,
			fmt.Sprintf("limit: want a number of events from 1 to %d", maxReadLimit))
	}
	return after, int(n), nil
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
