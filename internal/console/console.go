// Package console serves the web console (docs/console.md): a few static
// files, embedded in the manager's binary, that show a namespace's streams,
// projections, reactors, events, read models and dead letters through the
// HTTP API alone, so the API's authorization applies to everything it shows.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// Path is where the console is served; Path without its final slash
// redirects there.
const Path = "/console/"

//go:embed static
var static embed.FS

// contentSecurityPolicy allows the console's own files and calls to its own
// origin only: no inline script or style, no other site, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// contentTypes names the type of each kind of file the console holds;
// a file of another kind is not served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// file is one file of the console, ready to serve.
type file struct {
	contentType string
	etag        string
	body        []byte
	gzipped     []byte // nil when gzip would not make it smaller
}

// Handler serves the console at Path.
type Handler struct {
	files map[string]*file // by the path below Path: "index.html", "app.js"
}

// NewHandler returns the console's handler, its files read and compressed
// once: they cannot change while the binary runs.
func NewHandler() (*Handler, error) {
	root, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	h := &Handler{files: map[string]*file{}}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("console: %s has no content type; add its extension to contentTypes", name)
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		// Weak: the gzipped and the plain body share it.
		f := &file{contentType: ct, etag: `W/"` + hex.EncodeToString(sum[:8]) + `"`, body: body}
		if z := compress(body); len(z) < len(body) {
			f.gzipped = z
		}
		h.files[name] = f
		return nil
	})
	if err != nil {
		return nil, err
	}
	if h.files["index.html"] == nil {
		return nil, fmt.Errorf("console: no index.html")
	}
	return h, nil
}

func compress(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// WithAPI serves the console at Path (and redirects Path without its final
// slash there) and passes every other request to api untouched.
func (h *Handler) WithAPI(api http.Handler) http.Handler {
	bare := strings.TrimSuffix(Path, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == bare:
			redirectToPath(w, r)
		case strings.HasPrefix(r.URL.Path, Path):
			h.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
}

// redirectToPath sends /console to /console/, keeping the query (which
// names the namespace).
func redirectToPath(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	target := Path
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusMovedPermanently)
}

// ServeHTTP serves one of the console's files; Path itself is index.html.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, Path)
	if name == "" {
		name = "index.html"
	}
	f := h.files[name]
	hdr := w.Header()
	if f == nil {
		http.Error(w, "no such file in the console", http.StatusNotFound)
		return
	}
	// no-cache: the browser may keep a copy but asks each time, so a new
	// manager's console is seen at once; the ETag makes asking cheap.
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", f.etag)
	hdr.Set("Vary", "Accept-Encoding")
	if etagMatches(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", f.contentType)
	body := f.body
	if f.gzipped != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body = f.gzipped
		hdr.Set("Content-Encoding", "gzip")
	}
	hdr.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// setSecurityHeaders sets the headers every answer of the console carries,
// errors and redirects included: a browser applies the policy of whatever
// answer it renders.
func setSecurityHeaders(hdr http.Header) {
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
}

// etagMatches reports whether an If-None-Match header names etag (or is *),
// compared weakly as RFC 9110 says for If-None-Match.
func etagMatches(header, etag string) bool {
	for candidate := range strings.SplitSeq(header, ",") {
		candidate = strings.TrimPrefix(strings.TrimSpace(candidate), "W/")
		if candidate == strings.TrimPrefix(etag, "W/") || candidate == "*" {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") || strings.TrimSpace(coding) == "*" {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
