package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

const bySkuRedrive = "/v1/namespaces/team-a/projections/by-sku/redrive"

// withDeadLetter adds projection team-a/by-sku, which counts by
// payload.sku, and posts an event without one, which it dead-letters.
func withDeadLetter(t *testing.T, a *api) {
	t.Helper()
	must(t, a.engine.ApplyProjection(context.Background(), core.ProjectionSpec{Spec: projection.Spec{
		Name: ns + "/by-sku", Streams: []string{ns + "/items-events"}, StartFrom: projection.Beginning,
		Type: projection.Count, KeyExpression: "event.payload.sku",
	}}))
	event := core.Event{ID: "no-sku", Payload: []byte(`{"foo":"no sku","n":1}`)}
	_, err := a.engine.Ingest(context.Background(), ns+"/items-events", []core.Event{event})
	must(t, err)
	enginetest.Eventually(t, "the event to be dead-lettered", func() (bool, string) {
		dead, err := a.engine.ReadStream(context.Background(), ns+"/dead", 0, 10)
		return err == nil && len(dead) == 1, fmt.Sprintf("%d, %v", len(dead), err)
	})
}

func TestRedriveAnswers202WithHowManyEventsWereRedriven(t *testing.T) {
	a := newAPI(t, apiOptions{})
	withDeadLetter(t, a)

	r := a.post(bySkuRedrive, "application/json", `{"ids":["some-other-event"]}`)
	expectStatus(t, r, http.StatusAccepted)
	if got := r.json(t)["redriven"]; got != float64(0) {
		t.Fatalf("redrive of an id with no dead letter: redriven %v, want 0", got)
	}
	r = a.post(bySkuRedrive, "", "")
	expectStatus(t, r, http.StatusAccepted)
	if got := r.json(t)["redriven"]; got != float64(1) {
		t.Fatalf("redrive without a body: redriven %v, want 1; body %s", got, r.body)
	}
}

func TestRedriveRefusesABadBody(t *testing.T) {
	a := newAPI(t, apiOptions{})
	withDeadLetter(t, a)
	for _, body := range []string{`not json`, `{"ids":"no-sku"}`, `{"ids":[]}`, `{"ids":[""]}`, `{"id":["no-sku"]}`, `{"ids":["a"]} {}`} {
		expectStatus(t, a.post(bySkuRedrive, "application/json", body), http.StatusBadRequest)
	}
	expectStatus(t, a.post(bySkuRedrive, "text/plain", `{"ids":["no-sku"]}`), http.StatusUnsupportedMediaType)
	// Nothing was redriven by the refused requests.
	r := a.post(bySkuRedrive, "application/json", `{"ids":["no-sku"]}`)
	expectStatus(t, r, http.StatusAccepted)
	if got := r.json(t)["redriven"]; got != float64(1) {
		t.Fatalf("redriven %v, want 1", got)
	}
}

func TestRedriveOfABodyOver1MiBIs413(t *testing.T) {
	a := newAPI(t, apiOptions{})
	withDeadLetter(t, a)
	ids := `"` + strings.Repeat("x", 1<<20) + `"`
	r := a.post(bySkuRedrive, "application/json", `{"ids":[`+ids+`]}`)
	expectStatus(t, r, http.StatusRequestEntityTooLarge)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
}

func TestRedriveOfAnUnknownProjectionIs404(t *testing.T) {
	a := newAPI(t, apiOptions{})
	expectStatus(t, a.post("/v1/namespaces/team-a/projections/nope/redrive", "", ""), http.StatusNotFound)
}

func TestRedriveOfAWaitingProjectionIs409(t *testing.T) {
	a := newAPI(t, apiOptions{})
	err := a.engine.ApplyProjection(context.Background(), core.ProjectionSpec{Spec: projection.Spec{
		Name: ns + "/waits", Streams: []string{ns + "/not-yet"}, Type: projection.Count, Key: "n",
	}})
	if err == nil {
		t.Fatal("a projection of a missing stream applied without saying it waits")
	}
	expectStatus(t, a.post("/v1/namespaces/team-a/projections/waits/redrive", "", ""), http.StatusConflict)
}

func TestRedriveServesOnlyPOST(t *testing.T) {
	a := newAPI(t, apiOptions{})
	r := a.get(bySkuRedrive)
	expectStatus(t, r, http.StatusMethodNotAllowed)
	if got := r.header.Get("Allow"); got != "POST" {
		t.Errorf("Allow: got %q, want POST", got)
	}
}

func TestRedriveIsAuthorizedAsCreateOnProjectionsRedrive(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		a := newAPI(t, apiOptions{guard: denyGuard{status}})
		withDeadLetter(t, a)
		r := a.post(bySkuRedrive, "", "")
		expectStatus(t, r, status)
		if d, want := r.json(t)["detail"], "create projections/redrive team-a/by-sku denied"; d != want {
			t.Errorf("guard asked %q, want %q", d, want)
		}
		// A refusal comes first: it says nothing about what is there, and
		// redrives nothing.
		expectStatus(t, a.post("/v1/namespaces/team-a/projections/nope/redrive", "", ""), status)
		n, err := a.engine.RedriveProjection(context.Background(), ns+"/by-sku", nil)
		if err != nil || n != 1 {
			t.Fatalf("after the refused request: %d left to redrive (%v), want 1", n, err)
		}
	}
}

const shipRedrive = "/v1/namespaces/team-a/reactors/ship/redrive"

// withReactorDeadLetter adds reactor team-a/ship over items-events, to a
// sink that answers 400 while refuse is set, and posts an event, which it
// dead-letters. It returns the number of requests the sink got.
func withReactorDeadLetter(t *testing.T, a *api, refuse *atomic.Bool) func() int {
	t.Helper()
	var requests atomic.Int32
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		if refuse.Load() {
			http.Error(w, "not now", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(sink.Close)
	must(t, a.engine.ApplyReactor(context.Background(), core.ReactorSpec{
		Name: ns + "/ship", Streams: []string{ns + "/items-events"}, SinkURL: sink.URL,
	}))
	_, err := a.engine.Ingest(context.Background(), ns+"/items-events", []core.Event{{ID: "refused", Payload: []byte(`{"sku":"a"}`)}})
	must(t, err)
	enginetest.Eventually(t, "the event to be dead-lettered", func() (bool, string) {
		dead, err := a.engine.ReadStream(context.Background(), ns+"/dead", 0, 10)
		return err == nil && len(dead) == 1, fmt.Sprintf("%d, %v", len(dead), err)
	})
	return func() int { return int(requests.Load()) }
}

func TestReactorRedriveAnswers202AndDeliversTheDeadLetterAgain(t *testing.T) {
	a := newAPI(t, apiOptions{})
	var refuse atomic.Bool
	refuse.Store(true)
	requests := withReactorDeadLetter(t, a, &refuse)
	refuse.Store(false)

	r := a.post(shipRedrive, "application/json", `{"ids":["some-other-event"]}`)
	expectStatus(t, r, http.StatusAccepted)
	if got := r.json(t)["redriven"]; got != float64(0) {
		t.Fatalf("redrive of an id with no dead letter: redriven %v, want 0", got)
	}
	r = a.post(shipRedrive, "", "")
	expectStatus(t, r, http.StatusAccepted)
	if got := r.json(t)["redriven"]; got != float64(1) {
		t.Fatalf("redrive without a body: redriven %v, want 1; body %s", got, r.body)
	}
	enginetest.Eventually(t, "the sink to get the event again", func() (bool, string) {
		return requests() == 2, fmt.Sprintf("%d requests", requests())
	})
	r = a.post(shipRedrive, "", "")
	expectStatus(t, r, http.StatusAccepted)
	if got := r.json(t)["redriven"]; got != float64(0) {
		t.Fatalf("second redrive: redriven %v, want 0", got)
	}
}

func TestReactorRedriveRefusesABadBody(t *testing.T) {
	a := newAPI(t, apiOptions{})
	var refuse atomic.Bool
	refuse.Store(true)
	withReactorDeadLetter(t, a, &refuse)
	for _, body := range []string{`not json`, `{"ids":[]}`, `{"ids":[""]}`, `{"id":["refused"]}`} {
		expectStatus(t, a.post(shipRedrive, "application/json", body), http.StatusBadRequest)
	}
	expectStatus(t, a.post(shipRedrive, "text/plain", `{"ids":["refused"]}`), http.StatusUnsupportedMediaType)
	r := a.post(shipRedrive, "application/json", `{"ids":["refused"]}`)
	expectStatus(t, r, http.StatusAccepted)
	if got := r.json(t)["redriven"]; got != float64(1) {
		t.Fatalf("redriven %v, want 1: the refused requests redrove nothing", got)
	}
}

func TestReactorRedriveOfAnUnknownReactorIs404AndOfAWaitingOne409(t *testing.T) {
	a := newAPI(t, apiOptions{})
	expectStatus(t, a.post("/v1/namespaces/team-a/reactors/nope/redrive", "", ""), http.StatusNotFound)
	// A projection's name is not a reactor's.
	expectStatus(t, a.post("/v1/namespaces/team-a/reactors/items/redrive", "", ""), http.StatusNotFound)
	err := a.engine.ApplyReactor(context.Background(), core.ReactorSpec{
		Name: ns + "/waits", Streams: []string{ns + "/not-yet"}, SinkURL: "http://127.0.0.1:1",
	})
	if err == nil {
		t.Fatal("a reactor of a missing stream applied without saying it waits")
	}
	expectStatus(t, a.post("/v1/namespaces/team-a/reactors/waits/redrive", "", ""), http.StatusConflict)
}

func TestReactorRedriveServesOnlyPOST(t *testing.T) {
	a := newAPI(t, apiOptions{})
	r := a.get(shipRedrive)
	expectStatus(t, r, http.StatusMethodNotAllowed)
	if got := r.header.Get("Allow"); got != "POST" {
		t.Errorf("Allow: got %q, want POST", got)
	}
}

func TestReactorRedriveIsAuthorizedAsCreateOnReactorsRedrive(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		a := newAPI(t, apiOptions{guard: denyGuard{status}})
		var refuse atomic.Bool
		refuse.Store(true)
		withReactorDeadLetter(t, a, &refuse)
		r := a.post(shipRedrive, "", "")
		expectStatus(t, r, status)
		if d, want := r.json(t)["detail"], "create reactors/redrive team-a/ship denied"; d != want {
			t.Errorf("guard asked %q, want %q", d, want)
		}
		expectStatus(t, a.post("/v1/namespaces/team-a/reactors/nope/redrive", "", ""), status)
		n, err := a.engine.RedriveReactor(context.Background(), ns+"/ship", nil)
		if err != nil || n != 1 {
			t.Fatalf("after the refused request: %d left to redrive (%v), want 1", n, err)
		}
	}
}

func TestRedriveOnAReplicaThatDoesNotLeadIs503WithRetryAfter(t *testing.T) {
	a := newAPI(t, apiOptions{standby: true})
	r := a.post("/v1/namespaces/team-a/projections/items/redrive", "", "")
	expectStatus(t, r, http.StatusServiceUnavailable)
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After: got %q, want 1", got)
	}
	// Queries are answered there all the same.
	expectStatus(t, a.get("/v1/namespaces/team-a/projections/items"), http.StatusOK)
}
