package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

// projectionKeyPattern serves one key of a read model. The key is taken
// from the escaped path, not from the pattern's wildcard: a read model key
// may hold any character, '/' too (sent as %2F), so it is exactly one
// escaped segment, percent-decoded once. The empty key is the empty
// segment (.../keys/).
const projectionKeyPattern = "/v1/namespaces/{namespace}/projections/{projection}/keys/{key...}"

// keySegment is the index of the key among the escaped path's segments.
const keySegment = 7

// projectionKey serves GET .../projections/{projection}/keys/{key}, with
// the same authorization as the query of the whole read model.
func (h *Handler) projectionKey(w http.ResponseWriter, r *http.Request) {
	segments := strings.Split(r.URL.EscapedPath(), "/")
	if len(segments) != keySegment+1 {
		newProblem(http.StatusNotFound, kindNotFound,
			"no such path: a key is one path segment, with a '/' in it sent as %2F").write(w, r)
		return
	}
	h.serve(w, r, r.PathValue("namespace"), r.PathValue("projection"), "projection", queryAction,
		func(w http.ResponseWriter, r *http.Request, ns, projection string) *Problem {
			key, err := url.PathUnescape(segments[keySegment])
			if err != nil { // not from EscapedPath, which always escapes validly
				return newProblem(http.StatusBadRequest, kindInvalidRequest, "key: "+err.Error())
			}
			return h.queryKey(w, r, ns, projection, key)
		})
}

// queryKey answers the value under key in the read model as JSON.
func (h *Handler) queryKey(w http.ResponseWriter, r *http.Request, ns, projection, key string) *Problem {
	v, err := h.cfg.Engine.QueryKey(r.Context(), engineName(ns, projection), key)
	switch {
	case errors.Is(err, core.ErrProjectionNotFound):
		return newProblem(http.StatusNotFound, kindNotFound, fmt.Sprintf("no projection %q in namespace %q", projection, ns))
	case errors.Is(err, core.ErrKeyNotFound):
		return newProblem(http.StatusNotFound, kindNotFound,
			fmt.Sprintf("the read model of projection %q in namespace %q has no key %q", projection, ns, key))
	case err != nil:
		h.cfg.Log.Error(err, "query of a key failed", "namespace", ns, "projection", projection)
		return newProblem(http.StatusInternalServerError, kindInternal, "the read model could not be read")
	}
	// A read model has no version of its own: the ETag is a digest of the
	// value, so a client polling one key gets 304 until the value changes.
	tag := contentETag(v)
	w.Header().Set("ETag", tag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, tag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	writeRawJSON(w, http.StatusOK, v)
	return nil
}

// contentETag is a strong ETag naming exactly these bytes.
func contentETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}
