package cloudevents

import (
	"net/http"
	"strings"
	"testing"
)

func TestParseReplyReadsEachModeAndLetsIDsOut(t *testing.T) {
	binary := http.Header{}
	binary.Set("Ce-Specversion", "1.0")
	binary.Set("Ce-Type", "Shipped")
	binary.Set("Ce-Partitionkey", "order-1")
	binary.Set("Content-Type", "application/json")
	got, err := ParseReply(binary, []byte(`{"a":1}`))
	if err != nil || len(got) != 1 || got[0].Name != "Shipped" || got[0].Key != "order-1" || got[0].ID != "" {
		t.Fatalf("binary: got %+v, %v", got, err)
	}

	structured := http.Header{"Content-Type": {ContentTypeStructured}}
	got, err = ParseReply(structured, []byte(`{"specversion":"1.0","type":"Shipped","source":"/s","data":{"a":1}}`))
	if err != nil || len(got) != 1 || got[0].Name != "Shipped" || string(got[0].Payload) != `{"a":1}` {
		t.Fatalf("structured: got %+v, %v", got, err)
	}

	batch := http.Header{"Content-Type": {ContentTypeBatch}}
	got, err = ParseReply(batch, []byte(`[{"specversion":"1.0","id":"x","type":"A","source":"/s","data":1},`+
		`{"specversion":"1.0","type":"B","source":"/s","data":2}]`))
	if err != nil || len(got) != 2 || got[0].ID != "x" || got[1].Name != "B" {
		t.Fatalf("batch: got %+v, %v", got, err)
	}
}

func TestParseReplyIgnoresOtherBodies(t *testing.T) {
	got, err := ParseReply(http.Header{"Content-Type": {"application/json"}}, []byte(`{"ok":true}`))
	if err != nil || got != nil {
		t.Fatalf("got %+v, %v; want no events", got, err)
	}
}

func TestParseReplyRefusesInvalidEvents(t *testing.T) {
	_, err := ParseReply(http.Header{"Content-Type": {ContentTypeStructured}}, []byte(`{"specversion":"1.0","source":"/s","data":1}`))
	if err == nil || !strings.Contains(err.Error(), `"type" is required`) {
		t.Fatalf("got %v, want a missing type", err)
	}
}

func TestFromAttributesRequiresAnID(t *testing.T) {
	_, err := ParseStructured([]byte(`{"specversion":"1.0","type":"A","source":"/s","data":1}`))
	if err == nil || !strings.Contains(err.Error(), `"id" is required`) {
		t.Fatalf("got %v, want a missing id", err)
	}
}
