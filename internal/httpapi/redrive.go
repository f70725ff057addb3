package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"

	"github.com/goccy/go-json"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

// maxRedriveBody bounds a redrive request's body: a list of event ids.
const maxRedriveBody = 1 << 20

// redriveRequest is the optional body of a redrive.
type redriveRequest struct {
	// IDs are the original events' ids; absent or null means every dead
	// letter not yet redriven.
	IDs []string `json:"ids"`
}

// redriveRoute serves POST .../{kind}s/{name}/redrive for one kind of
// handler: projection or reactor (the path wildcard is named after it).
func (h *Handler) redriveRoute(kind string, action func(ns, name string) Action, fn redriveFunc, notFound error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.serve(w, r, r.PathValue("namespace"), r.PathValue(kind), kind, action, h.redrive(kind, fn, notFound))
	}
}

// redriveFunc is the engine's redrive of one kind of handler.
type redriveFunc func(ctx context.Context, name string, ids []string) (int, error)

// redrive serves POST .../{kind}s/{name}/redrive: the handler's dead
// letters are delivered to it again (docs/dead-letters.md). notFound is
// the engine's error for a handler it does not run.
func (h *Handler) redrive(kind string, redrive redriveFunc,
	notFound error) func(w http.ResponseWriter, r *http.Request, ns, name string) *Problem {
	return func(w http.ResponseWriter, r *http.Request, ns, name string) *Problem {
		ids, p := redriveIDs(w, r)
		if p != nil {
			return p
		}
		n, err := redrive(r.Context(), engineName(ns, name), ids)
		switch {
		case errors.Is(err, notFound):
			return newProblem(http.StatusNotFound, kindNotFound, fmt.Sprintf("no %s %q in namespace %q", kind, name, ns))
		case errors.Is(err, core.ErrStandby):
			// Another replica leads; behind a Service a retry may reach it.
			p := newProblem(http.StatusServiceUnavailable, kindUnavailable,
				fmt.Sprintf("%s %q runs on the replica that leads, not this one: nothing was redriven; retry", kind, name))
			p.retryAfter = 1
			return p
		case errors.Is(err, core.ErrNotRunning):
			return newProblem(http.StatusConflict, kindNotRunning,
				fmt.Sprintf("%s %q is not running, so it has no pipeline to redrive through: %v", kind, name, err))
		case err != nil:
			h.cfg.Log.Error(err, "redrive failed", "namespace", ns, kind, name, "redriven", n)
			return newProblem(http.StatusInternalServerError, kindInternal,
				fmt.Sprintf("the redrive stopped after %d events; the rest are still dead letters, try again", n))
		}
		writeJSON(w, http.StatusAccepted, map[string]int{"redriven": n})
		return nil
	}
}

// redriveIDs reads the optional {"ids": [...]} body: nil for every dead
// letter. An empty list, an empty id, an unknown field or a body that is
// not JSON is a 400.
func redriveIDs(w http.ResponseWriter, r *http.Request) ([]string, *Problem) {
	body, p := readBody(w, r, maxRedriveBody)
	if p != nil {
		return nil, p
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, newProblem(http.StatusUnsupportedMediaType, kindUnsupportedType,
				fmt.Sprintf("a redrive body is application/json, got %q", ct))
		}
	}
	var req redriveRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, newProblem(http.StatusBadRequest, kindInvalidRequest,
			fmt.Sprintf(`want {"ids": ["<event id>", ...]} or no body: %v`, err))
	}
	if dec.More() {
		return nil, newProblem(http.StatusBadRequest, kindInvalidRequest, "the body holds more than one JSON value")
	}
	if req.IDs != nil && len(req.IDs) == 0 {
		return nil, newProblem(http.StatusBadRequest, kindInvalidRequest,
			`"ids" lists no event; leave it out to redrive every dead letter`)
	}
	for i, id := range req.IDs {
		if id == "" {
			return nil, newProblem(http.StatusBadRequest, kindInvalidRequest, fmt.Sprintf(`"ids"[%d] is empty`, i))
		}
	}
	return req.IDs, nil
}
