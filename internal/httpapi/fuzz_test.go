package httpapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
)

// FuzzHandler sends arbitrary paths, methods, content types, headers and
// bodies: the answer is never a 500 (and never a panic), and every error is
// a problem+json document.
func FuzzHandler(f *testing.F) {
	const events = "/v1/namespaces/team-a/streams/items-events/events"
	seeds := []struct {
		method, path, contentType, header string
		body                              []byte
	}{
		{"POST", events, "application/json", "", []byte(`{"foo":"a","n":1}`)},
		{"POST", events, "application/avro", "", []byte{0x02, 0x61, 0x02}},
		{"POST", events, "application/x-protobuf", "", []byte{0x0a, 0x00}},
		{"POST", events + "?format=avro", "", "", []byte{0xff}},
		{"POST", events, "application/x-ndjson", "x", []byte("{}\n{\"a\":1}\n")},
		{"POST", events, "application/cloudevents-batch+json", "", []byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"T","data":{}}]`)},
		{"POST", events, "application/cloudevents+json", "", []byte(
			`{"specversion":"1.0","id":"1","source":"/s","type":"T","data_base64":"AA==","datacontenttype":"application/avro"}`)},
		{"GET", events + "?after=1&limit=3", "", "", nil},
		{"GET", "/v1/namespaces/team-a/projections/items", "", "", nil},
		{"PUT", "/v1/namespaces/%00/streams/x/events", "text/plain", "", []byte("x")},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.contentType, s.header, s.body)
	}
	e, err := core.New(core.Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer func() { _ = e.Close() }()
	if err := e.ApplyStream(core.StreamSpec{
		Name: "team-a/items-events", ContentTypes: []string{serde.JSON, serde.Avro, serde.Protobuf}, DefaultEventName: "ItemCreated",
		Schema: serde.Schema{Avro: itemSchema, ProtobufMessageType: "google.protobuf.Struct"},
	}); err != nil {
		f.Fatal(err)
	}
	h, err := httpapi.NewHandler(httpapi.Config{Engine: e, MaxEventBytes: 4096, Log: logr.Discard()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path, contentType, header string, body []byte) {
		req, err := http.NewRequest(method, "http://api"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Ce-Type", header)
		req.Header.Set("Idempotency-Key", header)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s (%s): status %d: %s", method, path, contentType, w.Code, w.Body)
		}
		if w.Code >= 400 && w.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("status %d answered as %q, want application/problem+json", w.Code, w.Header().Get("Content-Type"))
		}
	})
}
