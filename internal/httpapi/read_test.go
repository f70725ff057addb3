package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

func TestStreamReadPagesWithAfterLimitAndNext(t *testing.T) {
	a := newAPI(t, apiOptions{})
	for i := 1; i <= 5; i++ {
		expectStatus(t, a.post(itemsPath, "application/json", fmt.Sprintf(`{"n":%d}`, i)), http.StatusAccepted)
	}
	a.waitStored(itemsPath, 5)
	seen := make([]float64, 0, 5)
	after := 0.0
	for range 3 {
		r := a.get(fmt.Sprintf("%s?after=%v&limit=2", itemsPath, after))
		expectStatus(t, r, http.StatusOK)
		var page struct {
			Events []struct {
				Sequence float64        `json:"sequence"`
				Payload  map[string]any `json:"payload"`
			} `json:"events"`
			Next float64 `json:"next"`
		}
		must(t, json.Unmarshal(r.body, &page))
		for _, e := range page.Events {
			seen = append(seen, e.Payload["n"].(float64))
		}
		after = page.Next
	}
	if fmt.Sprint(seen) != "[1 2 3 4 5]" || after != 5 {
		t.Fatalf("read %v ending at next=%v, want [1 2 3 4 5] and next=5", seen, after)
	}
	r := a.get(itemsPath + "?after=5")
	expectStatus(t, r, http.StatusOK)
	if got := r.json(t); fmt.Sprint(got["events"]) != "[]" || got["next"] != float64(5) {
		t.Fatalf("read past the end: %v, want no events and next 5", got)
	}
}

func TestStreamReadRefusesBadParametersAndUnknownStreams(t *testing.T) {
	a := newAPI(t, apiOptions{})
	for _, q := range []string{"?after=-1", "?after=x", "?limit=0", "?limit=1001", "?limit=two"} {
		expectStatus(t, a.get(itemsPath+q), http.StatusBadRequest)
	}
	expectStatus(t, a.get("/v1/namespaces/team-a/streams/nope/events"), http.StatusNotFound)
	expectStatus(t, a.get("/v1/namespaces/team-b/streams/items-events/events"), http.StatusNotFound)
}

func TestDeletedStreamAndProjectionAnswer404(t *testing.T) {
	a := newAPI(t, apiOptions{})
	expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"a","n":1}`), http.StatusAccepted)
	a.readModel(`{"items":[{"foo":"a","n":1}]}`)
	a.engine.RemoveStream(ns + "/items-events")
	must(t, a.engine.RemoveProjection(t.Context(), ns+"/items"))
	expectStatus(t, a.get(itemsPath), http.StatusNotFound)
	expectStatus(t, a.post(itemsPath, "application/json", `{}`), http.StatusNotFound)
	expectStatus(t, a.get(itemsQuery), http.StatusNotFound)
}

func TestQueryOfAProjectionThatAppliedNothingIsAnEmptyDocument(t *testing.T) {
	a := newAPI(t, apiOptions{})
	r := a.get(itemsQuery)
	expectStatus(t, r, http.StatusOK)
	if string(r.body) != "{}\n" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("answer %q (%s), want {} and a newline as application/json", r.body, r.header.Get("Content-Type"))
	}
	expectStatus(t, a.get("/v1/namespaces/team-a/projections/nope"), http.StatusNotFound)
}

func TestDeadLetterStreamIsReadable(t *testing.T) {
	a := newAPI(t, apiOptions{})
	must(t, a.engine.ApplyProjection(t.Context(), core.ProjectionSpec{Spec: projectionByKey(ns+"/by-sku", "event.payload.sku")}))
	expectStatus(t, a.post(itemsPath, "application/json", `{"foo":"no sku"}`), http.StatusAccepted)
	events := a.waitStored("/v1/namespaces/team-a/streams/dead/events", 1)
	h := events[0]["headers"].(map[string]any)
	if h["x-dead-letter-stream"] != ns+"/items-events" || events[0]["payload"].(map[string]any)["foo"] != "no sku" {
		t.Fatalf("dead letter %v: want the original payload and the stream it came from", events[0])
	}
}

// A payload stored under an old schema that no longer decodes is shown as
// base64 rather than failing the whole page.
func TestPayloadThatNoLongerDecodesIsShownAsBase64(t *testing.T) {
	a := newAPI(t, apiOptions{})
	expectStatus(t, a.do(http.MethodPost, itemsPath, "application/avro", avroItem(t, "a", 1)), http.StatusAccepted)
	a.waitStored(itemsPath, 1)
	must(t, a.engine.ApplyStream(core.StreamSpec{
		Name: ns + "/items-events", ContentTypes: []string{serde.JSON, serde.Avro}, DefaultEventName: "ItemCreated",
		Schema: serde.Schema{Avro: `{"type":"record","name":"Item","fields":[
			{"name":"foo","type":"string"},{"name":"n","type":"int"},{"name":"extra","type":"string"}]}`},
	}))
	ev := a.storedEvents(itemsPath)[0]
	if ev["payload"] != nil || ev["payloadBase64"] == "" || ev["payloadBase64"] == nil {
		t.Fatalf("event %v: want payload null and payloadBase64 set", ev)
	}
}

func projectionByKey(name, keyExpression string) projection.Spec {
	return projection.Spec{Name: name, Streams: []string{ns + "/items-events"}, Type: projection.Latest, KeyExpression: keyExpression}
}
