package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
)

// userGuard allows every request and names its caller, as the
// KubernetesGuard does with the user of the caller's token.
type userGuard struct{ user string }

func (g userGuard) Check(*http.Request, httpapi.Action) (string, *httpapi.Problem) {
	return g.user, nil
}

const poster = "system:serviceaccount:team-a:checkout"

// postEveryWay posts one event in each ingest format, each claiming to
// come from mallory through a header, a ce-* header or a CloudEvents
// attribute, and returns how many events it posted.
func postEveryWay(t *testing.T, a *api) int {
	t.Helper()
	spoof := []string{"X-Eventsourcing-User", "mallory", "Ce-X-Eventsourcing-User", "mallory"}
	const ce = `"specversion":"1.0","source":"/t","type":"ItemCreated"`
	for _, r := range []response{
		a.post(itemsPath, "application/json", `{"foo":"single","n":1}`, spoof...),
		a.post(itemsPath, "application/x-ndjson", "{\"foo\":\"line-1\",\"n\":2}\n{\"foo\":\"line-2\",\"n\":3}\n", spoof...),
		a.post(itemsPath, "application/cloudevents+json",
			`{`+ce+`,"id":"ce-1","x-eventsourcing-user":"mallory","data":{"foo":"ce","n":4}}`, spoof...),
		a.post(itemsPath, "application/cloudevents-batch+json",
			`[{`+ce+`,"id":"ce-2","x-eventsourcing-user":"mallory","data":{"foo":"b1","n":5}},
			  {`+ce+`,"id":"ce-3","data":{"foo":"b2","n":6}}]`, spoof...),
		a.post("/v1/namespaces/team-a/streams/items-events/keys/k-1/events", "application/json", `{"foo":"keyed","n":7}`, spoof...),
	} {
		expectStatus(t, r, http.StatusAccepted)
	}
	return 7
}

func TestEachEventRecordsTheAuthenticatedPosterWhateverTheClientClaims(t *testing.T) {
	a := newAPI(t, apiOptions{guard: userGuard{poster}})
	events := a.waitStored(itemsPath, postEveryWay(t, a))
	for _, ev := range events {
		h := ev["headers"].(map[string]any)
		if h[httpapi.HeaderUser] != poster {
			t.Errorf("event %v: %s = %v, want %s", ev["payload"], httpapi.HeaderUser, h[httpapi.HeaderUser], poster)
		}
		if v, ok := h["ce-"+httpapi.HeaderUser]; ok {
			t.Errorf("event %v kept the client's claim ce-%s = %v", ev["payload"], httpapi.HeaderUser, v)
		}
	}
}

func TestWithoutAuthenticationNoEventNamesAPoster(t *testing.T) {
	a := newAPI(t, apiOptions{}) // AllowAll: --ingest-auth=none
	events := a.waitStored(itemsPath, postEveryWay(t, a))
	for _, ev := range events {
		h := ev["headers"].(map[string]any)
		for _, name := range []string{httpapi.HeaderUser, "ce-" + httpapi.HeaderUser} {
			if v, ok := h[name]; ok {
				t.Errorf("event %v has %s = %v, want no poster when requests are not authenticated", ev["payload"], name, v)
			}
		}
	}
}
