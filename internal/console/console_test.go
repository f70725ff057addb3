package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// serve sends one request to the console beside an API that answers 418.
func serve(t *testing.T, method, target string, header http.Header) *http.Response {
	t.Helper()
	h, err := NewHandler()
	if err != nil {
		t.Fatal(err)
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.WithAPI(api).ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConsoleFilesHaveTheirContentTypesAndASecurityPolicy(t *testing.T) {
	for path, want := range map[string]string{
		"/console/":            "text/html; charset=utf-8",
		"/console/index.html":  "text/html; charset=utf-8",
		"/console/app.js":      "text/javascript; charset=utf-8",
		"/console/style.css":   "text/css; charset=utf-8",
		"/console/favicon.svg": "image/svg+xml",
	} {
		r := serve(t, http.MethodGet, path, nil)
		if r.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", path, r.StatusCode)
			continue
		}
		if got := r.Header.Get("Content-Type"); got != want {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, want)
		}
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("GET %s: Content-Security-Policy %q, want default-src 'self' and nothing inline", path, csp)
		}
		if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", path, got)
		}
		if got := r.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache (revalidated with the ETag)", path, got)
		}
	}
}

// The policy forbids inline script and style and other origins; the page
// must need none of them.
func TestIndexHasNoInlineScriptStyleOrEventHandlers(t *testing.T) {
	html := string(body(t, serve(t, http.MethodGet, "/console/", nil)))
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(html, -1) {
		if !strings.Contains(tag, ` src="`) {
			t.Errorf("index.html has an inline script: %s", tag)
		}
	}
	for _, re := range []string{`\son[a-z]+=`, `<style`, `\sstyle=`, `(?:src|href)="(?:https?:)?//`} {
		if m := regexp.MustCompile(re).FindString(html); m != "" {
			t.Errorf("index.html has %q (matching %s): the policy forbids inline code and other origins", m, re)
		}
	}
}

func TestConsoleAnswers304WhileItsETagStillMatches(t *testing.T) {
	first := serve(t, http.MethodGet, "/console/app.js", nil)
	etag := first.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on the console's files")
	}
	again := serve(t, http.MethodGet, "/console/app.js", http.Header{"If-None-Match": {etag}})
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("GET with If-None-Match: %s: status %d, want 304", etag, again.StatusCode)
	}
	if b := body(t, again); len(b) != 0 {
		t.Errorf("a 304 has a body of %d bytes", len(b))
	}
	other := serve(t, http.MethodGet, "/console/style.css", http.Header{"If-None-Match": {etag}})
	if other.StatusCode != http.StatusOK {
		t.Errorf("style.css with app.js's ETag: status %d, want 200", other.StatusCode)
	}
}

func TestConsoleIsGzippedOnlyForClientsThatAcceptIt(t *testing.T) {
	plain := body(t, serve(t, http.MethodGet, "/console/app.js", nil))
	r := serve(t, http.MethodGet, "/console/app.js", http.Header{"Accept-Encoding": {"br, gzip"}})
	if r.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Accept-Encoding: gzip: Content-Encoding %q, want gzip", r.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body(t, r)))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unzipped, plain) {
		t.Error("the gzipped app.js differs from the plain one")
	}
	refused := serve(t, http.MethodGet, "/console/app.js", http.Header{"Accept-Encoding": {"gzip;q=0"}})
	if got := refused.Header.Get("Content-Encoding"); got != "" {
		t.Errorf("gzip;q=0: Content-Encoding %q, want none", got)
	}
	if got := r.Header.Get("Vary"); got != "Accept-Encoding" {
		t.Errorf("Vary %q, want Accept-Encoding", got)
	}
}

// A browser applies the policy of whatever answer it renders: an error
// page, a redirect's body and a revalidated copy carry it too.
func TestEveryConsoleAnswerCarriesTheSecurityHeaders(t *testing.T) {
	etag := serve(t, http.MethodGet, "/console/", nil).Header.Get("ETag")
	for _, c := range []struct {
		method, target string
		header         http.Header
		status         int
	}{
		{http.MethodGet, "/console/", nil, http.StatusOK},
		{http.MethodGet, "/console/", http.Header{"If-None-Match": {etag}}, http.StatusNotModified},
		{http.MethodGet, "/console/nope.js", nil, http.StatusNotFound},
		{http.MethodPost, "/console/", nil, http.StatusMethodNotAllowed},
		{http.MethodGet, "/console?namespace=shop", nil, http.StatusMovedPermanently},
	} {
		r := serve(t, c.method, c.target, c.header)
		if r.StatusCode != c.status {
			t.Errorf("%s %s: status %d, want %d", c.method, c.target, r.StatusCode, c.status)
		}
		for k, want := range map[string]string{
			"Content-Security-Policy": contentSecurityPolicy, "X-Content-Type-Options": "nosniff",
			"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
		} {
			if got := r.Header.Get(k); got != want {
				t.Errorf("%s %s (%d): %s %q, want %q", c.method, c.target, c.status, k, got, want)
			}
		}
	}
}

// Whatever the query holds, the redirect stays on this server's /console/:
// a Location such as //evil.example would send the browser to another site.
func TestConsoleRedirectNeverLeavesTheConsole(t *testing.T) {
	for _, target := range []string{
		"/console?//evil.example", "/console?/%2F%2Fevil.example", "/console?@evil.example", "/console?\\evil.example",
	} {
		r := serve(t, http.MethodGet, target, nil)
		if loc := r.Header.Get("Location"); !strings.HasPrefix(loc, "/console/?") {
			t.Errorf("GET %s: Location %q, want /console/?...", target, loc)
		}
	}
}

func TestConsoleWithoutItsSlashRedirectsKeepingTheNamespace(t *testing.T) {
	r := serve(t, http.MethodGet, "/console?namespace=shop", nil)
	if r.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("GET /console: status %d, want 301", r.StatusCode)
	}
	if got := r.Header.Get("Location"); got != "/console/?namespace=shop" {
		t.Errorf("Location %q, want /console/?namespace=shop", got)
	}
}

func TestConsoleServesOnlyItsFilesAndOnlyToGetAndHead(t *testing.T) {
	if r := serve(t, http.MethodGet, "/console/nope.js", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /console/nope.js: status %d, want 404", r.StatusCode)
	}
	r := serve(t, http.MethodPost, "/console/", nil)
	if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /console/: status %d Allow %q, want 405 with Allow: GET, HEAD", r.StatusCode, r.Header.Get("Allow"))
	}
	head := serve(t, http.MethodHead, "/console/", nil)
	if head.StatusCode != http.StatusOK || len(body(t, head)) != 0 {
		t.Errorf("HEAD /console/: status %d, want 200 without a body", head.StatusCode)
	}
}

func TestEveryOtherPathGoesToTheAPI(t *testing.T) {
	for _, path := range []string{"/v1/namespaces/default/streams", "/", "/consoles", "/v1/openapi.json"} {
		if r := serve(t, http.MethodGet, path, nil); r.StatusCode != http.StatusTeapot {
			t.Errorf("GET %s: status %d, want the API's 418", path, r.StatusCode)
		}
	}
}
