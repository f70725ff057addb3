package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"

	"github.com/go-logr/logr"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
)

// projectionKeyPath is the path of one key of the named projection of team-a,
// escaped.
func projectionKeyPath(name, key string) string {
	return "/v1/namespaces/team-a/projections/" + name + "/keys/" + url.PathEscape(key)
}

// withTotals adds team-a/totals to a: a Reduce of each foo's sum of n.
func withTotals(t *testing.T, a *api) {
	t.Helper()
	must(t, a.engine.ApplyProjection(t.Context(), core.ProjectionSpec{Spec: projection.Spec{
		Name: ns + "/totals", Streams: []string{ns + "/items-events"}, Type: projection.Reduce,
		KeyExpression: "event.payload.foo",
		Reducer:       projection.Reducer{Initial: "{'sum': 0}", Expression: "{'sum': state.sum + event.payload.n}"},
	}}))
}

func TestQueryKeyAnswersTheValueOfOneKey(t *testing.T) {
	a := newAPI(t, apiOptions{})
	withTotals(t, a)
	for _, body := range []string{`{"foo":"a/b c?%","n":1}`, `{"foo":"a/b c?%","n":2}`, `{"foo":"","n":5}`, `{"foo":"..","n":7}`} {
		expectStatus(t, a.post(itemsPath, "application/json", body), http.StatusAccepted)
	}
	a.readModel(`{"items":[{"foo":"a/b c?%","n":1},{"foo":"a/b c?%","n":2},{"foo":"","n":5},{"foo":"..","n":7}]}`)
	waitQuery(t, a, ns+"/totals", `{"":{"sum":5},"a/b c?%":{"sum":3},"..":{"sum":7}}`)

	for _, c := range []struct{ path, want string }{
		{projectionKeyPath("items", "items"), `[{"foo":"a/b c?%","n":1},{"foo":"a/b c?%","n":2},{"foo":"","n":5},{"foo":"..","n":7}]`},
		{projectionKeyPath("totals", "a/b c?%"), `{"sum":3}`},
		{"/v1/namespaces/team-a/projections/totals/keys/a%2fb%20c%3F%25", `{"sum":3}`}, // any escaping
		{projectionKeyPath("totals", ""), `{"sum":5}`},
		{"/v1/namespaces/team-a/projections/totals/keys/%2E%2E", `{"sum":7}`}, // dot segments go escaped
	} {
		r := a.get(c.path)
		expectStatus(t, r, http.StatusOK)
		if string(r.body) != c.want+"\n" || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: got %s (%s), want %s as application/json", c.path, r.body, r.header.Get("Content-Type"), c.want)
		}
	}
}

// waitQuery waits until the engine's read model of the named projection
// is want.
func waitQuery(t *testing.T, a *api, name, want string) {
	t.Helper()
	var wantV any
	must(t, json.Unmarshal([]byte(want), &wantV))
	enginetest.Eventually(t, "read model "+name+" to be "+want, func() (bool, string) {
		doc, err := a.engine.Query(t.Context(), name)
		var got any
		return err == nil && json.Unmarshal(doc, &got) == nil && reflect.DeepEqual(got, wantV), string(doc)
	})
}

func TestQueryKeyAnswers404ForAKeyOrProjectionThatIsNotThere(t *testing.T) {
	a := newAPI(t, apiOptions{})
	expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"a","n":1}`), http.StatusAccepted)
	a.readModel(`{"items":[{"foo":"a","n":1}]}`)
	for _, path := range []string{
		projectionKeyPath("items", "nope"),
		projectionKeyPath("items", "items/x"),                     // a '/' sent as %2F is part of the key
		"/v1/namespaces/team-a/projections/items/keys/items/x",    // a raw '/' makes two segments
		projectionKeyPath("nope", "items"),                        // no such projection
		"/v1/namespaces/team-a/projections/Not_A_Name/keys/items", // not even a valid name
		"/v1/namespaces/team-b/projections/items/keys/items",      // another namespace
	} {
		r := a.get(path)
		expectStatus(t, r, http.StatusNotFound)
		if got := r.json(t)["type"]; got != "https://eventsourcing.dev/problems#not-found" {
			t.Errorf("GET %s: problem type %v, want #not-found", path, got)
		}
	}
	must(t, a.engine.RemoveProjection(t.Context(), ns+"/items"))
	expectStatus(t, a.get(projectionKeyPath("items", "items")), http.StatusNotFound)
}

func TestQueryKeyServesOnlyGETAndHEAD(t *testing.T) {
	a := newAPI(t, apiOptions{})
	r := a.post(projectionKeyPath("items", "items"), "application/json", `{}`)
	expectStatus(t, r, http.StatusMethodNotAllowed)
	if got := r.header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow: got %q, want GET, HEAD", got)
	}
}

func TestQueryKeyIsAuthorizedAsTheQueryOfItsProjection(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		a := newAPI(t, apiOptions{guard: denyGuard{status}})
		r := a.get(projectionKeyPath("items", "items"))
		expectStatus(t, r, status)
		if d, want := r.json(t)["detail"], "get projections/state team-a/items denied"; d != want {
			t.Errorf("guard asked %q, want %q", d, want)
		}
		// A refusal comes first: it says nothing about what is there.
		expectStatus(t, a.get(projectionKeyPath("nope", "x")), status)
	}
}

// failingKeys is an engine whose read models cannot be read.
type failingKeys struct{ *core.Engine }

func (failingKeys) QueryKey(context.Context, string, string) ([]byte, error) {
	return nil, errors.New("read model store is closed")
}

func TestQueryKeyAnswers500WhenTheReadModelCannotBeRead(t *testing.T) {
	e, err := core.New(core.Config{})
	must(t, err)
	t.Cleanup(func() { _ = e.Close() })
	h, err := httpapi.NewHandler(httpapi.Config{Engine: failingKeys{e}, Log: logr.Discard()})
	must(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	a := &api{t: t, engine: e, server: srv}
	r := a.get(projectionKeyPath("items", "items"))
	expectStatus(t, r, http.StatusInternalServerError)
	if d := r.json(t)["detail"]; d != "the read model could not be read" {
		t.Errorf("detail: got %q, want one that leaks no internal error", d)
	}
}

func TestQueryKeyAnswersNotModifiedUntilTheValueChanges(t *testing.T) {
	a := newAPI(t, apiOptions{})
	withTotals(t, a)
	path := projectionKeyPath("totals", "a")
	expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"a","n":1}`), http.StatusAccepted)
	waitQuery(t, a, ns+"/totals", `{"a":{"sum":1}}`)
	first := a.get(path)
	expectStatus(t, first, http.StatusOK)
	tag := first.header.Get("ETag")
	if len(tag) < 3 || tag[0] != '"' || tag[len(tag)-1] != '"' {
		t.Fatalf("ETag %q, want a strong ETag", tag)
	}
	again := a.do(http.MethodGet, path, "", nil, "If-None-Match", tag)
	if again.status != http.StatusNotModified || len(again.body) != 0 || again.header.Get("ETag") != tag {
		t.Fatalf("If-None-Match with the value's ETag: %d %q ETag %q, want 304 with the same ETag",
			again.status, again.body, again.header.Get("ETag"))
	}
	expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"a","n":2}`), http.StatusAccepted)
	waitQuery(t, a, ns+"/totals", `{"a":{"sum":3}}`)
	changed := a.do(http.MethodGet, path, "", nil, "If-None-Match", tag)
	expectStatus(t, changed, http.StatusOK)
	if string(changed.body) != `{"sum":3}`+"\n" || changed.header.Get("ETag") == tag {
		t.Fatalf("after a change: %s with ETag %q (was %q)", changed.body, changed.header.Get("ETag"), tag)
	}
}
