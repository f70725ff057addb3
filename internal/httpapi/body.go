package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/goccy/go-json"
)

// readBody reads the whole request body, refusing one over limit bytes with
// a 413. A declared Content-Length over the limit is refused before any of
// the body is read; a chunked body is cut off at the limit. The returned
// slice is the caller's: the engine may keep it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *Problem) {
	if r.ContentLength > limit {
		return nil, tooLarge(r.ContentLength, limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var (
		buf []byte
		err error
	)
	if r.ContentLength >= 0 {
		buf = make([]byte, r.ContentLength)
		_, err = io.ReadFull(body, buf)
	} else {
		buf, err = io.ReadAll(body)
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, tooLarge(-1, limit)
		}
		return nil, newProblem(http.StatusBadRequest, kindInvalidRequest, fmt.Sprintf("read the request body: %v", err))
	}
	return buf, nil
}

func tooLarge(size, limit int64) *Problem {
	detail := fmt.Sprintf("the body is larger than the limit of %d bytes", limit)
	if size >= 0 {
		detail = fmt.Sprintf("the body is %d bytes; the limit is %d bytes", size, limit)
	}
	return newProblem(http.StatusRequestEntityTooLarge, kindTooLarge, detail)
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own answer types get here, and they always encode.
		panic(fmt.Sprintf("httpapi: encode answer: %v", err))
	}
	writeRawJSON(w, status, body)
}

var newline = []byte{'\n'}

// writeRawJSON answers body, a JSON document, with status; a newline ends
// it, so answers printed by curl do not run into the next prompt.
func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write(newline)
}
