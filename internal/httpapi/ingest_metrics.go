package httpapi

import (
	"io"
	"net/http"
	"time"
)

// serveIngest serves an ingest request as serve does, and records it in the
// stream's ingest metrics: its status code (500 for a panic, which
// ServeHTTP answers), its duration and its body's size.
func (h *Handler) serveIngest(w http.ResponseWriter, r *http.Request, ns, stream string,
	endpoint func(http.ResponseWriter, *http.Request, string, string) *Problem) {
	series := h.cfg.Metrics.Ingest(ns, stream)
	if series == nil {
		h.serve(w, r, ns, stream, "stream", ingestAction, endpoint)
		return
	}
	start := time.Now()
	size := r.ContentLength
	var counted *countingReader
	if size < 0 && r.Body != nil && r.Body != http.NoBody {
		// A chunked body: its size is what is read of it.
		counted = &countingReader{r: r.Body}
		r.Body = counted
	}
	code := http.StatusInternalServerError
	defer func() {
		if counted != nil {
			size = counted.n
		}
		series.Observe(code, time.Since(start), size)
	}()
	code = h.serve(w, r, ns, stream, "stream", ingestAction, endpoint)
	if code == 0 {
		code = http.StatusAccepted // ingest's one answer that is not a problem
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
