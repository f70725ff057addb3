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
// checkpoints but not the leader's counters, nor whether they run well.
func TestListOnAReplicaThatDoesNotLeadGivesNullForWhatOnlyTheLeaderKnows(t *testing.T) {
	a := newAPI(t, apiOptions{standby: true})
	r := a.get("/v1/namespaces/" + ns + "/projections")
	expectStatus(t, r, http.StatusOK)
	want := `{"items":[{"name":"items","eventsProcessed":null,"deadLettered":null,"lag":0,"ready":null,"standby":true}]}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Errorf("projections on a standby replica: got %s, want %s", got, want)
	}
}
