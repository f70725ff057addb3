// Package cloudevents reads CloudEvents (HTTP binding, binary and
// structured modes) into events the engine can ingest. Ingest over HTTP
// and a Reactor's replies both use it, so a sink's answer is read exactly
// as a client's request would be.
package cloudevents

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

// Content types of the structured modes.
const (
	ContentTypeStructured = "application/cloudevents+json"
	ContentTypeBatch      = "application/cloudevents-batch+json"
)

// Event is one CloudEvent as the engine ingests it.
type Event struct {
	// ID is the id attribute (ce-id); may be empty in binary mode.
	ID string
	// Name is the type attribute (ce-type).
	Name string
	// Key is the partitionkey extension.
	Key         string
	ContentType string
	// Headers are the other attributes and extensions as ce-* headers,
	// lowercased, as the HTTP binding writes them.
	Headers map[string]string
	Payload []byte
}

// HeaderAttributes keeps the CloudEvents attributes sent as ce-* headers,
// other than id, type and partitionkey, which become the event's ID, name
// and key.
func HeaderAttributes(hdr http.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr {
		if len(k) <= 3 || !strings.EqualFold(k[:3], "ce-") || len(v) == 0 {
			continue
		}
		key := strings.ToLower(k)
		if key == "ce-id" || key == "ce-type" || key == "ce-partitionkey" {
			continue
		}
		if out == nil {
			out = make(map[string]string, 4)
		}
		out[key] = v[0]
	}
	return out
}

// Binary reads one event in binary mode: the body is the payload, of
// contentType, and the ce-* headers are the attributes.
func Binary(hdr http.Header, contentType string, body []byte) Event {
	return Event{
		ID:          hdr.Get("Ce-Id"),
		Name:        hdr.Get("Ce-Type"),
		Key:         hdr.Get("Ce-Partitionkey"),
		ContentType: contentType,
		Headers:     HeaderAttributes(hdr),
		Payload:     body,
	}
}

// ParseStructured reads one event in structured mode
// (application/cloudevents+json).
func ParseStructured(body []byte) (Event, error) {
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(body, &attrs); err != nil {
		return Event{}, fmt.Errorf("a structured CloudEvent is a JSON object: %w", err)
	}
	return FromAttributes(attrs)
}

// ErrEmptyBatch is a batch that holds no event.
var ErrEmptyBatch = errors.New("the batch holds no events")

// ParseBatchAttributes reads a batch (application/cloudevents-batch+json)
// into each event's attributes, for FromAttributes.
func ParseBatchAttributes(body []byte) ([]map[string]json.RawMessage, error) {
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("a CloudEvents batch is a JSON array of events: %w", err)
	}
	if len(raw) == 0 {
		return nil, ErrEmptyBatch
	}
	return raw, nil
}

// FromAttributes turns one structured CloudEvent into an Event. It needs
// specversion 1.0, id, source and type; id and type become the event's ID
// and name, the other attributes and extensions ce-* headers, as in binary
// mode. data is the payload when it is JSON; data_base64 carries any other
// format, named by datacontenttype.
func FromAttributes(attrs map[string]json.RawMessage) (Event, error) {
	return fromAttributes(attrs, true)
}

func fromAttributes(attrs map[string]json.RawMessage, idRequired bool) (Event, error) {
	var ev Event
	str := func(name string) (string, error) {
		v, ok := attrs[name]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("attribute %q must be a string", name)
		}
		return s, nil
	}
	spec, err := str("specversion")
	if err != nil {
		return ev, err
	}
	if spec != "1.0" {
		return ev, fmt.Errorf("specversion %q: want \"1.0\"", spec)
	}
	for _, required := range []struct {
		name string
		dst  *string
	}{{"id", &ev.ID}, {"type", &ev.Name}, {"source", nil}} {
		v, err := str(required.name)
		if err != nil {
			return ev, err
		}
		if v == "" && (idRequired || required.name != "id") {
			return ev, fmt.Errorf("attribute %q is required", required.name)
		}
		if required.dst != nil {
			*required.dst = v
		}
	}
	ct, err := str("datacontenttype")
	if err != nil {
		return ev, err
	}
	if ev.Payload, ev.ContentType, err = data(attrs, ct); err != nil {
		return ev, err
	}
	if ev.Key, err = str("partitionkey"); err != nil {
		return ev, err
	}
	for name, v := range attrs {
		switch name {
		case "id", "type", "partitionkey", "data", "data_base64":
			continue
		}
		if ev.Headers == nil {
			ev.Headers = make(map[string]string, len(attrs))
		}
		ev.Headers["ce-"+strings.ToLower(name)] = attributeText(v)
	}
	return ev, nil
}

// data returns the payload and its content type.
func data(attrs map[string]json.RawMessage, ct string) ([]byte, string, error) {
	data, hasData := attrs["data"]
	b64, hasB64 := attrs["data_base64"]
	switch {
	case hasData && hasB64:
		return nil, "", fmt.Errorf("give data or data_base64, not both")
	case hasB64:
		var s string
		if err := json.Unmarshal(b64, &s); err != nil {
			return nil, "", fmt.Errorf("data_base64 must be a string")
		}
		payload, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, "", fmt.Errorf("data_base64: %w", err)
		}
		if ct == "" {
			return nil, "", fmt.Errorf("data_base64 needs a datacontenttype (application/avro, application/x-protobuf, ...)")
		}
		return payload, ct, nil
	case !hasData:
		return nil, "", fmt.Errorf("the event has no data")
	case ct == "" || IsJSON(ct):
		return bytes.TrimSpace(data), serde.JSON, nil
	default:
		// data of a non-JSON type is carried as a JSON string.
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, "", fmt.Errorf("data of type %q must be a JSON string, or use data_base64", ct)
		}
		return []byte(s), ct, nil
	}
}

// IsJSON reports whether a datacontenttype is JSON (application/json,
// text/json or any +json type).
func IsJSON(ct string) bool {
	ct = serde.NormalizeContentType(ct)
	return ct == serde.JSON || ct == "text/json" || strings.HasSuffix(ct, "+json")
}

// attributeText renders an attribute as a header value: strings as they are,
// other JSON values (numbers, booleans) as their JSON text.
func attributeText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(bytes.TrimSpace(v))
}

// ParseReply reads the events in an HTTP answer: binary mode (a
// ce-specversion header; one event), application/cloudevents+json (one) or
// application/cloudevents-batch+json (several). Any other answer holds no
// event. Unlike ingest, an event may leave its id out: the caller derives
// one. An error says why the answer is not valid CloudEvents.
func ParseReply(hdr http.Header, body []byte) ([]Event, error) {
	ct := serde.NormalizeContentType(hdr.Get("Content-Type"))
	if spec := hdr.Get("Ce-Specversion"); spec != "" {
		if spec != "1.0" {
			return nil, fmt.Errorf("ce-specversion %q: want \"1.0\"", spec)
		}
		if ct == "" {
			ct = serde.JSON
		}
		return []Event{Binary(hdr, ct, body)}, nil
	}
	switch ct {
	case ContentTypeStructured:
		var attrs map[string]json.RawMessage
		if err := json.Unmarshal(body, &attrs); err != nil {
			return nil, fmt.Errorf("a structured CloudEvent is a JSON object: %w", err)
		}
		ev, err := fromAttributes(attrs, false)
		if err != nil {
			return nil, err
		}
		return []Event{ev}, nil
	case ContentTypeBatch:
		var raw []map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, fmt.Errorf("a CloudEvents batch is a JSON array of events: %w", err)
		}
		events := make([]Event, len(raw))
		for i, attrs := range raw {
			ev, err := fromAttributes(attrs, false)
			if err != nil {
				return nil, fmt.Errorf("event %d: %w", i, err)
			}
			events[i] = ev
		}
		return events, nil
	}
	return nil, nil
}
