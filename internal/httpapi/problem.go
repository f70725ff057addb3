package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// problemBase prefixes the type URI of every problem the API answers with;
// the fragment names the kind, so clients can switch on it.
const problemBase = "https://eventsourcing.dev/problems#"

// Problem is an RFC 9457 problem detail. Every error the API answers is one.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	// Detail says what to change; the contract names it in every problem.
	Detail string `json:"detail"`
	// Instance is the request path the problem is about.
	Instance string `json:"instance,omitempty"`
	// Index is the position, from 0, of the refused event in a batch request.
	Index *int `json:"index,omitempty"`

	// retryAfter, in seconds, becomes the Retry-After header when positive.
	retryAfter int
	// authenticate becomes the WWW-Authenticate header of a 401.
	authenticate string
	// etag becomes the ETag header (a 412's current version).
	etag string
}

// Kinds of problem, by the fragment of their type URI.
const (
	kindInvalidPayload     = "invalid-payload"
	kindInvalidRequest     = "invalid-request"
	kindUnauthenticated    = "unauthenticated"
	kindForbidden          = "forbidden"
	kindNotFound           = "not-found"
	kindMethodNotAllowed   = "method-not-allowed"
	kindTooLarge           = "too-large"
	kindUnsupportedType    = "unsupported-content-type"
	kindBackpressure       = "backpressure"
	kindUnavailable        = "unavailable"
	kindInternal           = "internal"
	kindVersionConflict    = "version-conflict"
	kindNotRunning         = "not-running"
	contentTypeProblemJSON = "application/problem+json"
)

func newProblem(status int, kind, detail string) *Problem {
	return &Problem{Type: problemBase + kind, Title: http.StatusText(status), Status: status, Detail: detail}
}

// Error makes a Problem usable as an error inside the handlers.
func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// write sends p. Encoding a Problem cannot fail, so neither can this.
func (p *Problem) write(w http.ResponseWriter, r *http.Request) {
	p.Instance = r.URL.Path
	h := w.Header()
	h.Set("Content-Type", contentTypeProblemJSON)
	h.Set("X-Content-Type-Options", "nosniff")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	if p.authenticate != "" {
		h.Set("WWW-Authenticate", p.authenticate)
	}
	if p.etag != "" {
		h.Set("ETag", p.etag)
	}
	body, _ := json.Marshal(p)
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}
