package httpapi_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestNDJSONBatchIsStoredInOrderAndAnswersItsIDs(t *testing.T) {
	a := newAPI(t, apiOptions{})
	body := "{\"foo\":\"a\",\"n\":1}\n\n{\"foo\":\"b\",\"n\":2}\r\n{\"foo\":\"c\",\"n\":3}" // blank line, CRLF, no final newline
	r := a.post(itemsPath, "application/x-ndjson", body, "X-Correlation-ID", "batch-1")
	expectStatus(t, r, http.StatusAccepted)
	got := r.json(t)
	ids, _ := got["ids"].([]any)
	if got["accepted"] != true || got["count"] != float64(3) || len(ids) != 3 || got["stream"] != "items-events" {
		t.Fatalf("answer %v, want accepted, count 3, 3 ids, stream items-events", got)
	}
	events := a.waitStored(itemsPath, 3)
	for i := range events {
		if events[i]["id"] != ids[i] || events[i]["correlationId"] != "batch-1" || events[i]["name"] != "ItemCreated" {
			t.Errorf("event %d: id %v correlation %v name %v; want %v, batch-1, ItemCreated",
				i, events[i]["id"], events[i]["correlationId"], events[i]["name"], ids[i])
		}
	}
	a.readModel(`{"items":[{"foo":"a","n":1},{"foo":"b","n":2},{"foo":"c","n":3}]}`)
}

func TestNDJSONBatchWithOneBadLineStoresNothing(t *testing.T) {
	a := newAPI(t, apiOptions{outboxCapacity: 100, notRunning: true})
	r := a.post(itemsPath, "application/x-ndjson", "{\"n\":1}\n{\"n\":\n{\"n\":3}\n")
	expectStatus(t, r, http.StatusBadRequest)
	if idx := r.json(t)["index"]; idx != float64(1) {
		t.Fatalf("problem index %v, want 1 (the second event)", idx)
	}
	if got := a.engine.Stats().OutboxPending; got != 0 {
		t.Fatalf("a refused batch left %d events in the outbox, want 0", got)
	}
}

func TestNDJSONBatchRetriedWithTheSameIdempotencyKeyIsStoredOnce(t *testing.T) {
	a := newAPI(t, apiOptions{})
	for range 2 {
		r := a.post(itemsPath, "application/x-ndjson", "{\"n\":1}\n{\"n\":2}\n", "Idempotency-Key", "import-7")
		expectStatus(t, r, http.StatusAccepted)
		if ids := fmt.Sprint(r.json(t)["ids"]); ids != "[import-7-0 import-7-1]" {
			t.Fatalf("ids %s, want [import-7-0 import-7-1]", ids)
		}
	}
	expectStatus(t, a.post(itemsPath, "application/json", `{"n":3}`), http.StatusAccepted)
	a.waitStored(itemsPath, 3)
}

func TestBatchLimits(t *testing.T) {
	a := newAPI(t, apiOptions{maxEventBytes: 32, maxBatch: 3})
	cases := []struct {
		name, contentType, body string
		want                    int
	}{
		{"too many NDJSON events", "application/x-ndjson", "{}\n{}\n{}\n{}\n", 413},
		{"an NDJSON line over the event limit", "application/x-ndjson", "{}\n{\"foo\":\"" + strings.Repeat("x", 40) + "\"}\n", 413},
		{"an empty NDJSON batch", "application/x-ndjson", "\n\n", 400},
		{"too many CloudEvents", "application/cloudevents-batch+json", "[" + strings.Repeat(ce("x", `{}`)+",", 3) + ce("y", `{}`) + "]", 413},
		{"an empty CloudEvents batch", "application/cloudevents-batch+json", "[]", 400},
		{"a CloudEvents batch that is not an array", "application/cloudevents-batch+json", "{}", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectStatus(t, a.post(itemsPath, c.contentType, c.body), c.want)
		})
	}
}

// ce renders one structured CloudEvent with JSON data.
func ce(id, data string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/test","type":"ItemCreated","data":%s}`, id, data)
}

func TestCloudEventsStructuredBatchCarriesEveryFormat(t *testing.T) {
	a := newAPI(t, apiOptions{})
	batch := fmt.Sprintf(`[
		{"specversion":"1.0","id":"e1","source":"/shop","type":"ItemCreated","subject":"a",
		 "datacontenttype":"application/json","data":{"foo":"a","n":1}},
		{"specversion":"1.0","id":"e2","source":"/shop","type":"ItemCreated","datacontenttype":"application/avro","data_base64":%q},
		{"specversion":"1.0","id":"e3","source":"/shop","type":"ItemCreated",
		 "datacontenttype":"application/x-protobuf","data_base64":%q,"tenant":"acme","priority":3}
	]`, base64.StdEncoding.EncodeToString(avroItem(t, "b", 2)), base64.StdEncoding.EncodeToString(protoItem(t, "c", 3)))
	r := a.post(itemsPath, "application/cloudevents-batch+json", batch)
	expectStatus(t, r, http.StatusAccepted)
	if ids := fmt.Sprint(r.json(t)["ids"]); ids != "[e1 e2 e3]" {
		t.Fatalf("ids %s, want [e1 e2 e3]", ids)
	}
	a.readModel(`{"items":[{"foo":"a","n":1},{"foo":"b","n":2},{"foo":"c","n":3}]}`)
	events := a.waitStored(itemsPath, 3)
	h0 := events[0]["headers"].(map[string]any)
	h2 := events[2]["headers"].(map[string]any)
	if h0["ce-source"] != "/shop" || h0["ce-subject"] != "a" || h2["ce-tenant"] != "acme" || h2["ce-priority"] != "3" {
		t.Fatalf("headers %v and %v: want ce-source, ce-subject and the extensions kept", h0, h2)
	}
}

func TestCloudEventsStructuredModeTakesOneEvent(t *testing.T) {
	a := newAPI(t, apiOptions{})
	r := a.post(itemsPath, "application/cloudevents+json; charset=utf-8", ce("one", `{"foo":"a","n":1}`))
	expectStatus(t, r, http.StatusAccepted)
	if got := r.json(t)["id"]; got != "one" {
		t.Fatalf("id %v, want one", got)
	}
	a.readModel(`{"items":[{"foo":"a","n":1}]}`)
}

func TestInvalidCloudEventsAreRefusedNamingTheEventAndTheAttribute(t *testing.T) {
	a := newAPI(t, apiOptions{})
	cases := []struct {
		name, event, detail string
		want                int
	}{
		{"no id", `{"specversion":"1.0","source":"/s","type":"T","data":{}}`, `"id" is required`, 400},
		{"no source", `{"specversion":"1.0","id":"1","type":"T","data":{}}`, `"source" is required`, 400},
		{"wrong specversion", `{"specversion":"0.3","id":"1","source":"/s","type":"T","data":{}}`, "specversion", 400},
		{"id not a string", `{"specversion":"1.0","id":1,"source":"/s","type":"T","data":{}}`, `"id" must be a string`, 400},
		{"no data", `{"specversion":"1.0","id":"1","source":"/s","type":"T"}`, "no data", 400},
		{"data and data_base64", `{"specversion":"1.0","id":"1","source":"/s","type":"T","data":{},"data_base64":"e30="}`, "not both", 400},
		{
			"bad base64",
			`{"specversion":"1.0","id":"1","source":"/s","type":"T","datacontenttype":"application/avro","data_base64":"!!"}`, "data_base64", 400,
		},
		{
			"data that does not validate",
			`{"specversion":"1.0","id":"1","source":"/s","type":"T","datacontenttype":"application/avro","data_base64":"Ag=="}`, "event 1", 400,
		},
		{
			"a type the stream does not take",
			`{"specversion":"1.0","id":"1","source":"/s","type":"T","datacontenttype":"text/plain","data":"hi"}`, "text/plain", 415,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := a.post(itemsPath, "application/cloudevents-batch+json", "["+ce("ok", `{}`)+","+c.event+"]")
			expectStatus(t, r, c.want)
			p := r.json(t)
			if d, _ := p["detail"].(string); !strings.Contains(d, c.detail) {
				t.Errorf("detail %q, want it to mention %q", d, c.detail)
			}
			if c.want == 400 && p["index"] != float64(1) {
				t.Errorf("index %v, want 1", p["index"])
			}
		})
	}
	if n := len(a.storedEvents(itemsPath)); n != 0 {
		t.Fatalf("refused batches stored %d events, want 0", n)
	}
}
