package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// keyPage is the answer to a read of one key: next and after are versions.
type keyPage struct {
	Events  []eventView `json:"events"`
	Next    uint64      `json:"next"`
	Version uint64      `json:"version"`
}

// keyEvents serves .../streams/{stream}/keys/{key}/events. The key is the
// path segment percent-decoded once, as ServeMux gives it.
func (h *Handler) keyEvents(w http.ResponseWriter, r *http.Request) {
	ns, stream, key := r.PathValue("namespace"), r.PathValue("stream"), r.PathValue("key")
	switch r.Method {
	case http.MethodPost:
		h.serve(w, r, ns, stream, "stream", ingestAction, func(w http.ResponseWriter, r *http.Request, ns, stream string) *Problem {
			return h.ingestInto(w, r, ns, stream, key)
		})
	case http.MethodGet:
		h.serve(w, r, ns, stream, "stream", readAction, func(w http.ResponseWriter, r *http.Request, ns, stream string) *Problem {
			return h.readKey(w, r, ns, stream, key)
		})
	default:
		methodNotAllowed(w, r, "GET, POST")
	}
}

// readKey serves GET .../keys/{key}/events?after=V&limit=M, with the key's
// version as the ETag; If-None-Match with that version answers 304.
func (h *Handler) readKey(w http.ResponseWriter, r *http.Request, ns, stream, key string) *Problem {
	if err := versions.ValidateKey(key); err != nil {
		return newProblem(http.StatusBadRequest, kindInvalidRequest, err.Error())
	}
	after, limit, p := pageParams(r)
	if p != nil {
		return p
	}
	msgs, version, err := h.cfg.Engine.ReadKey(r.Context(), engineName(ns, stream), key, after, limit)
	switch {
	case errors.Is(err, core.ErrStreamNotFound):
		return streamNotFound(ns, stream)
	case err != nil:
		h.cfg.Log.Error(err, "read key failed", "namespace", ns, "stream", stream, "key", key)
		return newProblem(http.StatusInternalServerError, kindInternal, fmt.Sprintf("key %q could not be read", key))
	}
	tag := etag(version)
	w.Header().Set("ETag", tag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, tag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	page := keyPage{Events: make([]eventView, len(msgs)), Next: after, Version: version}
	for i, m := range msgs {
		page.Events[i] = view(m)
		page.Next = m.Version
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
