package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// keyPage is the answer to a read of one key: next and after are versions.
type keyPage struct {
	Events  []eventView `json:"events"`
	Next    uint64      `json:"next"`
	Version uint64      `json:"version"`
}

// keyEventsPost and keyEventsGet serve .../streams/{stream}/keys/{key}/events.
// The key is the path segment percent-decoded once, as ServeMux gives it.
func (h *Handler) keyEventsPost(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	h.serve(w, r, r.PathValue("namespace"), r.PathValue("stream"), "stream", ingestAction,
		func(w http.ResponseWriter, r *http.Request, ns, stream string) *Problem {
			return h.ingestInto(w, r, ns, stream, key)
		})
}

func (h *Handler) keyEventsGet(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	h.serve(w, r, r.PathValue("namespace"), r.PathValue("stream"), "stream", readAction,
		func(w http.ResponseWriter, r *http.Request, ns, stream string) *Problem {
			return h.readKey(w, r, ns, stream, key)
		})
}

// readKey serves GET .../keys/{key}/events?after=V&limit=M&wait=D, with the
// key's version as the ETag; If-None-Match with that version answers 304.
// A request that accepts text/event-stream is a live read.
func (h *Handler) readKey(w http.ResponseWriter, r *http.Request, ns, stream, key string) *Problem {
	if err := versions.ValidateKey(key); err != nil {
		return newProblem(http.StatusBadRequest, kindInvalidRequest, err.Error())
	}
	rp, p := parseReadParams(r)
	if p != nil {
		return p
	}
	if rp.name != "" {
		return newProblem(http.StatusBadRequest, kindInvalidRequest,
			"name: filters stream reads only; a key's events are read whole")
	}
	if wantsEventStream(r) {
		return h.liveKey(w, r, ns, stream, key, rp)
	}
	name := engineName(ns, stream)
	// A long poll waits for events stored after the stream's current end:
	// an event of the key newer than this read is appended after it.
	var head uint64
	var err error
	if rp.wait > 0 {
		head, err = h.cfg.Engine.LastSequence(r.Context(), name)
	}
	var msgs []engine.Message
	var version uint64
	if err == nil {
		msgs, version, err = h.cfg.Engine.ReadKey(r.Context(), name, key, rp.after, rp.limit)
	}
	if err == nil && len(msgs) == 0 && rp.wait > 0 {
		var arrived bool
		arrived, err = h.await(w, r, name, head, rp.wait, func(m engine.Message) bool {
			return m.Key == key && m.Version > rp.after
		})
		if arrived {
			msgs, version, err = h.cfg.Engine.ReadKey(r.Context(), name, key, rp.after, rp.limit)
		}
	}
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
	page := keyPage{Events: make([]eventView, len(msgs)), Next: rp.after, Version: version}
	for i, m := range msgs {
		page.Events[i] = view(m)
		page.Next = m.Version
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
