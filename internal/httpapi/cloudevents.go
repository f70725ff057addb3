package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/cloudevents"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
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
		var err error
		if raw, err = cloudevents.ParseBatchAttributes(body); err != nil {
			return nil, newProblem(http.StatusBadRequest, kindInvalidRequest, err.Error())
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
	ce, err := cloudevents.FromAttributes(attrs)
	if err != nil {
		return core.Event{}, err
	}
	return core.Event{
		ID: ce.ID, Name: ce.Name, Key: ce.Key, ContentType: ce.ContentType, Headers: ce.Headers, Payload: ce.Payload,
	}, nil
}
