package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

// cloudEvents reads CloudEvents in structured mode: one event
// (application/cloudevents+json) or a JSON array of them
// (application/cloudevents-batch+json). Each needs specversion 1.0, id,
// source and type; id and type become the event's ID and name, the other
// attributes and extensions ce-* headers, as in binary mode. data is the
// payload when it is JSON; data_base64 carries any other format, named by
// datacontenttype.
func (h *Handler) cloudEvents(w http.ResponseWriter, r *http.Request, batch bool) ([]core.Event, *Problem) {
	correlation := r.Header.Get("X-Correlation-Id")
	if len(correlation) > maxIDBytes {
		return nil, checkKeys(core.Event{CorrelationID: correlation})
	}
	if correlation == "" {
		correlation = newCorrelationID()
	}
	limit := h.cfg.MaxEventBytes
	if batch {
		limit = h.cfg.MaxRequestBytes
	}
	body, p := readBody(w, r, limit)
	if p != nil {
		return nil, p
	}
	var raw []map[string]json.RawMessage
	if batch {
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, newProblem(http.StatusBadRequest, kindInvalidRequest,
				fmt.Sprintf("a CloudEvents batch is a JSON array of events: %v", err))
		}
		if len(raw) == 0 {
			return nil, newProblem(http.StatusBadRequest, kindInvalidRequest, "the batch holds no events")
		}
		if len(raw) > h.cfg.MaxBatchEvents {
			return nil, tooManyEvents(h.cfg.MaxBatchEvents)
		}
	} else {
		var one map[string]json.RawMessage
		if err := json.Unmarshal(body, &one); err != nil {
			return nil, newProblem(http.StatusBadRequest, kindInvalidRequest,
				fmt.Sprintf("a structured CloudEvent is a JSON object: %v", err))
		}
		raw = append(raw, one)
	}
	events := make([]core.Event, len(raw))
	for i, attrs := range raw {
		ev, err := cloudEvent(attrs)
		if err == nil && int64(len(ev.Payload)) > h.cfg.MaxEventBytes {
			p := newProblem(http.StatusRequestEntityTooLarge, kindTooLarge,
				fmt.Sprintf("event %d's data is %d bytes; the limit per event is %d bytes", i, len(ev.Payload), h.cfg.MaxEventBytes))
			p.Index = intPtr(i)
			return nil, p
		}
		if err == nil {
			ev.CorrelationID = correlation
			if p := checkKeys(ev); p != nil {
				err = fmt.Errorf("%s", p.Detail)
			}
		}
		if err != nil {
			p := newProblem(http.StatusBadRequest, kindInvalidRequest, fmt.Sprintf("event %d: %v", i, err))
			p.Index = intPtr(i)
			return nil, p
		}
		events[i] = ev
	}
	return events, nil
}

// cloudEvent turns one structured CloudEvent into an Event.
func cloudEvent(attrs map[string]json.RawMessage) (core.Event, error) {
	var ev core.Event
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
		if v == "" {
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
	if ev.Payload, ev.ContentType, err = cloudEventData(attrs, ct); err != nil {
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

// cloudEventData returns the payload and its content type.
func cloudEventData(attrs map[string]json.RawMessage, ct string) ([]byte, string, error) {
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
	case ct == "" || isJSON(ct):
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

// isJSON reports whether a datacontenttype is JSON (application/json,
// text/json or any +json type).
func isJSON(ct string) bool {
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
