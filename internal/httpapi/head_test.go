package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// HEAD is served wherever GET is: the same status and headers, no body.
// A live read answers its headers and ends rather than streaming.
func TestHeadAnswersWhatGetWouldWithoutABody(t *testing.T) {
	a := newAPI(t, apiOptions{})
	expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"a"}`), http.StatusAccepted)
	a.waitStored(itemsPath, 1)

	for _, path := range []string{itemsPath, itemsQuery, "/v1/namespaces/team-a/streams", "/v1/openapi.json"} {
		get, head := a.get(path), a.do(http.MethodHead, path, "", nil)
		if head.status != get.status || head.header.Get("Content-Type") != get.header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d %q; GET: %d %q", path, head.status, head.header.Get("Content-Type"),
				get.status, get.header.Get("Content-Type"))
		}
		if len(head.body) != 0 {
			t.Errorf("HEAD %s answered a body of %d bytes", path, len(head.body))
		}
	}
	missing := "/v1/namespaces/team-a/streams/nope/events"
	if r := a.do(http.MethodHead, missing, "", nil); r.status != http.StatusNotFound || len(r.body) != 0 {
		t.Errorf("HEAD of a missing stream: %d with %d bytes, want 404 without a body", r.status, len(r.body))
	}

	r := a.do(http.MethodHead, itemsPath, "", nil, "Accept", "text/event-stream")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD of a live read: %d %q, want 200 text/event-stream", r.status, r.header.Get("Content-Type"))
	}
	// A keep-alive client sends its next request on the same connection
	// once a HEAD's headers are in; the server reads it only after the
	// HEAD's handler has returned.
	conn, err := net.Dial("tcp", a.server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }() // ends a live read still streaming, so that the server can close
	_, err = fmt.Fprintf(conn, "HEAD %s HTTP/1.1\r\nHost: api\r\nAccept: text/event-stream\r\n\r\n"+
		"GET /v1/openapi.json HTTP/1.1\r\nHost: api\r\n\r\n", itemsPath)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rd := bufio.NewReader(conn)
	for _, req := range []*http.Request{{Method: http.MethodHead}, {Method: http.MethodGet}} {
		resp, err := http.ReadResponse(rd, req)
		if err != nil {
			t.Fatalf("%s answer on a connection after a HEAD of a live read: %v (the live read goes on streaming to nobody)", req.Method, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s on the connection: %d, want 200", req.Method, resp.StatusCode)
		}
	}
}

// A path served only by POST does not take HEAD either.
func TestHeadIsRefusedWhereGetIsNotServed(t *testing.T) {
	a := newAPI(t, apiOptions{})
	r := a.do(http.MethodHead, "/v1/namespaces/team-a/projections/items/redrive", "", nil)
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Errorf("HEAD of a redrive: %d, Allow %q; want 405, Allow POST", r.status, r.header.Get("Allow"))
	}
}
