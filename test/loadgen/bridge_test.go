package loadgen_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
	"github.com/eventsourcing-dev/eventsourcing-operator/test/loadgen"
)

// The bridge answers 202 only once JetStream holds what was posted: a
// single event as one message, an NDJSON batch as one message per line.
func TestBridgeStoresEachPostedEventBeforeItsAnswer(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	js := natstest.JetStream(t, srv.ClientURL())
	stream, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "BARE", Subjects: []string{"bare"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadgen.NewBridge(srv.ClientURL(), "bare")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	api := httptest.NewServer(b)
	t.Cleanup(api.Close)

	post := func(contentType, body string) {
		t.Helper()
		resp, err := http.Post(api.URL+"/", contentType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: %d, want 202", contentType, resp.StatusCode)
		}
	}
	post("application/json", `{"n":1}`)
	post("application/x-ndjson", "{\"n\":2}\n{\"n\":3}\n")

	got := storedPayloads(t, stream)
	if want := []string{`{"n":1}`, `{"n":2}`, `{"n":3}`}; !slices.Equal(got, want) {
		t.Errorf("the stream holds %q once the answers came, want %q", got, want)
	}
}
