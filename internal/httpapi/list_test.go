package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
)

// listItems GETs a list and decodes its items.
func (a *api) listItems(path string) []map[string]any {
	a.t.Helper()
	r := a.get(path)
	expectStatus(a.t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		a.t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var l struct {
		Items []map[string]any `json:"items"`
	}
	must(a.t, json.Unmarshal(r.body, &l))
	return l.Items
}

// waitItems waits until the list's items are want (JSON).
func (a *api) waitItems(path, want string) {
	a.t.Helper()
	var w []map[string]any
	must(a.t, json.Unmarshal([]byte(want), &w))
	enginetest.Eventually(a.t, path+" to list "+want, func() (bool, string) {
		got := a.listItems(path)
		return reflect.DeepEqual(got, w), fmt.Sprint(got)
	})
}

func TestListsNameTheNamespacesObjectsSortedWithTheirFigures(t *testing.T) {
	a := newAPI(t, apiOptions{})
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(sink.Close)
	ctx := context.Background()
	must(t, a.engine.ApplyReactor(ctx, core.ReactorSpec{
		Name: ns + "/shipper", Streams: []string{ns + "/items-events"}, SinkURL: sink.URL, StartFrom: projection.Beginning,
	}))
	// Another namespace's objects, and one whose name starts like ns's.
	must(t, a.engine.ApplyStream(core.StreamSpec{Name: "team-b/other"}))
	must(t, a.engine.ApplyStream(core.StreamSpec{Name: ns + "x/other"}))
	must(t, a.engine.ApplyProjection(ctx, core.ProjectionSpec{Spec: projection.Spec{
		Name: "team-b/p", Streams: []string{"team-b/other"}, Type: projection.Append, Key: "k",
	}}))

	// Registered, and waiting for its stream: listed, not ready.
	if err := a.engine.ApplyProjection(ctx, core.ProjectionSpec{Spec: projection.Spec{
		Name: ns + "/waiting", Streams: []string{ns + "/not-yet"}, Type: projection.Append, Key: "k",
	}}); !errors.Is(err, core.ErrStreamNotFound) {
		t.Fatalf("ApplyProjection of a projection on a missing stream: %v, want ErrStreamNotFound", err)
	}

	expectStatus(t, a.post(itemsPath, "application/x-ndjson", "{\"foo\":\"a\"}\n{\"foo\":\"b\"}\n{\"foo\":\"c\"}\n"), http.StatusAccepted)

	base := "/v1/namespaces/" + ns
	a.waitItems(base+"/projections",
		`[{"name":"items","eventsProcessed":3,"deadLettered":0,"lag":0,"ready":true},
		  {"name":"waiting","eventsProcessed":0,"deadLettered":0,"lag":0,"ready":false}]`)
	a.waitItems(base+"/reactors",
		`[{"name":"shipper","eventsDelivered":3,"deadLettered":0,"lag":0,"ready":true}]`)
	// The rate averages whole seconds: the three events count once the
	// second they came in is over, as 3 over 10 s.
	a.waitItems(base+"/streams", `[
		{"name":"items-events","lastSequence":3,"subscribers":2,"eventsPerSecond":0.3},
		{"name":"json-only","lastSequence":0,"subscribers":0,"eventsPerSecond":0}]`)
}

func TestListOfANamespaceWithNothingIsAnEmptyList(t *testing.T) {
	a := newAPI(t, apiOptions{})
	for _, kind := range []string{"streams", "projections", "reactors"} {
		r := a.get("/v1/namespaces/nothing-here/" + kind)
		expectStatus(t, r, http.StatusOK)
		if got := strings.TrimSpace(string(r.body)); got != `{"items":[]}` {
			t.Errorf("%s of an empty namespace: got %s, want {\"items\":[]}", kind, got)
		}
	}
}

func TestListsAskForTheListVerbInTheNamespace(t *testing.T) {
	a := newAPI(t, apiOptions{guard: denyGuard{http.StatusForbidden}})
	for kind, resource := range map[string]string{
		"streams": "streams/events", "projections": "projections/state", "reactors": "reactors/state",
	} {
		r := a.get("/v1/namespaces/" + ns + "/" + kind)
		expectStatus(t, r, http.StatusForbidden)
		want := "list " + resource + " " + ns + "/ denied" // no object name: the whole namespace
		if got := r.json(t)["detail"]; got != want {
			t.Errorf("%s: the guard was asked %q, want %q", kind, got, want)
		}
	}
}

func TestListOfANamespaceKubernetesWouldRefuseIsNotFound(t *testing.T) {
	a := newAPI(t, apiOptions{})
	expectStatus(t, a.get("/v1/namespaces/Not_A_Namespace/streams"), http.StatusNotFound)
}

// A replica that does not lead knows its handlers' lag from the stored
// checkpoints but not the leader's counters, nor whether they run well,
// unless Config.LeaderFigures gives them.
func TestListOnAReplicaThatDoesNotLeadGivesNullForWhatOnlyTheLeaderKnows(t *testing.T) {
	a := newAPI(t, apiOptions{standby: true})
	r := a.get("/v1/namespaces/" + ns + "/projections")
	expectStatus(t, r, http.StatusOK)
	want := `{"items":[{"name":"items","eventsProcessed":null,"deadLettered":null,"lag":0,"ready":null,"standby":true}]}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Errorf("projections on a standby replica: got %s, want %s", got, want)
	}
}

// figuresOf is a LeaderFigures of fixed answers, by "namespace/name".
type figuresOf map[string]httpapi.Figures

func (f figuresOf) ProjectionFigures(_ context.Context, namespace, name string) (httpapi.Figures, bool) {
	v, ok := f["projection:"+namespace+"/"+name]
	return v, ok
}

func (f figuresOf) ReactorFigures(_ context.Context, namespace, name string) (httpapi.Figures, bool) {
	v, ok := f["reactor:"+namespace+"/"+name]
	return v, ok
}

// With LeaderFigures, a replica that does not lead lists the leader's
// counters (still marked standby); a handler it has none for keeps nulls.
func TestListOnAReplicaThatDoesNotLeadGivesTheLeadersFiguresWhenItHasThem(t *testing.T) {
	figures := figuresOf{"projection:" + ns + "/items": {Handled: 42, DeadLettered: 3, Ready: true}}
	a := newAPI(t, apiOptions{standby: true, leaderFigures: figures})
	r := a.get("/v1/namespaces/" + ns + "/projections")
	expectStatus(t, r, http.StatusOK)
	want := `{"items":[{"name":"items","eventsProcessed":42,"deadLettered":3,"lag":0,"ready":true,"standby":true}]}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Errorf("projections on a standby replica with the leader's figures: got %s, want %s", got, want)
	}

	must(t, a.engine.ApplyReactor(t.Context(), core.ReactorSpec{
		Name: ns + "/shipper", Streams: []string{ns + "/items-events"}, SinkURL: "http://127.0.0.1:1", StartFrom: projection.Beginning,
	}))
	figures["reactor:"+ns+"/shipper"] = httpapi.Figures{Handled: 7, Ready: false}
	r = a.get("/v1/namespaces/" + ns + "/reactors")
	want = `{"items":[{"name":"shipper","eventsDelivered":7,"deadLettered":0,"lag":0,"ready":false,"standby":true}]}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Errorf("reactors on a standby replica with the leader's figures: got %s, want %s", got, want)
	}

	delete(figures, "projection:"+ns+"/items")
	r = a.get("/v1/namespaces/" + ns + "/projections")
	want = `{"items":[{"name":"items","eventsProcessed":null,"deadLettered":null,"lag":0,"ready":null,"standby":true}]}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Errorf("projections on a standby replica without the leader's figures: got %s, want %s", got, want)
	}
}
