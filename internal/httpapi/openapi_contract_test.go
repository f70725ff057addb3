package httpapi_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// operation is the part of an OpenAPI operation the contract test reads.
type operation struct {
	Parameters  []json.RawMessage `json:"parameters"`
	RequestBody struct {
		Content map[string]json.RawMessage `json:"content"`
	} `json:"requestBody"`
	Responses map[string]json.RawMessage `json:"responses"`
}

type openAPIResponse struct {
	Headers map[string]json.RawMessage `json:"headers"`
	Content map[string]json.RawMessage `json:"content"`
}

// operationsByID maps each operationId to its operation, with the path
// item's parameters before its own.
func operationsByID(t *testing.T, doc openAPIDoc) map[string]operation {
	t.Helper()
	out := map[string]operation{}
	for _, item := range doc.Paths {
		var shared []json.RawMessage
		if raw, ok := item["parameters"]; ok {
			must(t, json.Unmarshal(raw, &shared))
		}
		for _, m := range operations {
			raw, ok := item[m]
			if !ok {
				continue
			}
			var op operation
			var id struct {
				OperationID string `json:"operationId"`
			}
			must(t, json.Unmarshal(raw, &op))
			must(t, json.Unmarshal(raw, &id))
			op.Parameters = append(slices.Clone(shared), op.Parameters...)
			out[id.OperationID] = op
		}
	}
	return out
}

// parameterNames are an operation's parameters as "in:name", header names
// in lower case (HTTP header names are case-insensitive).
func parameterNames(t *testing.T, doc openAPIDoc, op operation) []string {
	t.Helper()
	out := make([]string, 0, len(op.Parameters))
	for _, raw := range op.Parameters {
		var p parameter
		must(t, json.Unmarshal(resolveRaw(t, doc, raw), &p))
		if p.In == "header" {
			p.Name = strings.ToLower(p.Name)
		}
		out = append(out, p.In+":"+p.Name)
	}
	return out
}

// The HTTP API (docs/http-api.md) names, per
// operation, the parameters and headers a client may send, the bodies it
// may post and the answers it gets: the OpenAPI document must describe
// each, as clients are generated from it.
func TestOpenAPIDescribesWhatTheContractNames(t *testing.T) {
	doc := fetchOpenAPI(t, newAPI(t, apiOptions{}))
	ops := operationsByID(t, doc)

	ingestParams := []string{
		"query:format", "query:name", "header:ce-type", "header:ce-id", "header:idempotency-key",
		"header:x-correlation-id", "header:if-match", "header:if-none-match",
		"header:ce-source", "header:ce-subject", "header:ce-time",
		"header:traceparent", "header:tracestate",
	}
	ingestBodies := []string{
		"application/json", "application/avro", "application/x-protobuf",
		"application/x-ndjson", "application/cloudevents+json", "application/cloudevents-batch+json",
	}
	ingestCodes := []string{"202", "400", "401", "403", "404", "412", "413", "415", "503"}
	redriveCodes := []string{"202", "400", "401", "403", "404", "409", "413", "415", "503"}
	listCodes := []string{"200", "401", "403"}
	for _, c := range []struct {
		op     string
		params []string
		bodies []string
		codes  []string
	}{
		{"ingest", append(slices.Clone(ingestParams), "header:ce-partitionkey"), ingestBodies, ingestCodes},
		{"appendToKey", ingestParams, ingestBodies, ingestCodes},
		{"readStream", []string{"query:after", "query:limit", "query:wait", "query:name", "header:last-event-id"}, nil,
			[]string{"200", "400", "401", "403", "404"}},
		{"readKey", []string{"path:key", "query:after", "query:limit", "query:wait", "header:last-event-id", "header:if-none-match"}, nil,
			[]string{"200", "304", "400", "401", "403", "404"}},
		{"queryProjection", nil, nil, []string{"200", "401", "403", "404"}},
		{"queryProjectionKey", []string{"path:key", "header:if-none-match"}, nil, []string{"200", "304", "401", "403", "404"}},
		{"redriveProjection", nil, []string{"application/json"}, redriveCodes},
		{"redriveReactor", nil, []string{"application/json"}, redriveCodes},
		{"listStreams", []string{"path:namespace"}, nil, listCodes},
		{"listProjections", []string{"path:namespace"}, nil, listCodes},
		{"listReactors", []string{"path:namespace"}, nil, listCodes},
	} {
		op, ok := ops[c.op]
		if !ok {
			t.Errorf("no operation %s", c.op)
			continue
		}
		params := parameterNames(t, doc, op)
		for _, p := range c.params {
			if !slices.Contains(params, p) {
				t.Errorf("%s: parameter %s is not described (it has %v)", c.op, p, params)
			}
		}
		for _, b := range c.bodies {
			if _, ok := op.RequestBody.Content[b]; !ok {
				t.Errorf("%s: a %s body is not described", c.op, b)
			}
		}
		for _, code := range c.codes {
			if _, ok := op.Responses[code]; !ok {
				t.Errorf("%s: the %s answer is not described", c.op, code)
			}
		}
	}

	// Headers of answers the contract names.
	for _, c := range []struct{ op, code, header string }{
		{"ingest", "503", "Retry-After"},
		{"appendToKey", "503", "Retry-After"},
		{"ingest", "202", "ETag"},
		{"appendToKey", "202", "ETag"},
		{"appendToKey", "412", "ETag"},
		{"readKey", "200", "ETag"},
		{"ingest", "401", "WWW-Authenticate"},
		{"listStreams", "401", "WWW-Authenticate"},
	} {
		var r openAPIResponse
		must(t, json.Unmarshal(resolveRaw(t, doc, ops[c.op].Responses[c.code]), &r))
		if _, ok := r.Headers[c.header]; !ok {
			t.Errorf("%s: the %s answer does not describe its %s header", c.op, c.code, c.header)
		}
	}
	// Live reads answer Server-Sent Events.
	for _, op := range []string{"readStream", "readKey"} {
		var r openAPIResponse
		must(t, json.Unmarshal(resolveRaw(t, doc, ops[op].Responses["200"]), &r))
		if _, ok := r.Content["text/event-stream"]; !ok {
			t.Errorf("%s: the 200 answer does not describe text/event-stream", op)
		}
	}
}

// The headers an event view shows that the contract names: the trace
// context kept from the ingest and the poster the API authenticated.
func TestOpenAPIEventViewNamesTheHeadersTheServerSets(t *testing.T) {
	doc := fetchOpenAPI(t, newAPI(t, apiOptions{}))
	v, err := resolve(doc.raw, "#/components/schemas/EventView/properties/headers/properties")
	if err != nil {
		t.Fatalf("EventView's headers describe no named header: %v", err)
	}
	props, _ := v.(map[string]any)
	for _, h := range []string{"traceparent", "tracestate", "x-eventsourcing-user"} {
		if _, ok := props[h]; !ok {
			t.Errorf("EventView's headers do not describe %s", h)
		}
	}
}

// Every error is a problem document with type, title, status and detail,
// as the contract names them.
func TestOpenAPIProblemRequiresWhatTheContractNames(t *testing.T) {
	doc := fetchOpenAPI(t, newAPI(t, apiOptions{}))
	v, err := resolve(doc.raw, "#/components/schemas/Problem/required")
	must(t, err)
	required, _ := v.([]any)
	for _, f := range []string{"type", "title", "status", "detail"} {
		if !slices.Contains(required, any(f)) {
			t.Errorf("the Problem schema does not require %s (it requires %v)", f, required)
		}
	}
}
