package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/cloudevents"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

// ndjsonEvents reads an application/x-ndjson body: one JSON payload per
// line, blank lines ignored. The request's headers apply to every event:
// ce-type or ?name= names them all, ce-partitionkey keys them all,
// X-Correlation-ID (or one new id) correlates them, and an
// Idempotency-Key K gives them the ids K-0, K-1, ... so that a retried
// batch is stored once.
func (h *Handler) ndjsonEvents(w http.ResponseWriter, r *http.Request) ([]core.Event, *Problem) {
	template := core.Event{
		Name:          firstNonEmpty(r.Header.Get("Ce-Type"), r.URL.Query().Get("name")),
		CorrelationID: r.Header.Get("X-Correlation-Id"),
		Key:           r.Header.Get("Ce-Partitionkey"),
		ContentType:   serde.JSON,
		Headers:       cloudevents.HeaderAttributes(r.Header),
	}
	key := firstNonEmpty(r.Header.Get("Idempotency-Key"), r.Header.Get("Ce-Id"))
	if len(key) > maxIDBytes-8 {
		return nil, newProblem(http.StatusBadRequest, kindInvalidRequest,
			fmt.Sprintf("Idempotency-Key is %d bytes; at most %d for a batch", len(key), maxIDBytes-8))
	}
	if p := checkKeys(template); p != nil {
		return nil, p
	}
	if template.CorrelationID == "" {
		template.CorrelationID = newCorrelationID()
	}
	body, p := readBody(w, r, h.cfg.MaxRequestBytes)
	if p != nil {
		return nil, p
	}
	events := make([]core.Event, 0, bytes.Count(body, []byte{'\n'})+1)
	lineNo := 0
	for len(body) > 0 {
		var line []byte
		line, body, _ = bytes.Cut(body, []byte{'\n'})
		lineNo++
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if int64(len(line)) > h.cfg.MaxEventBytes {
			p := newProblem(http.StatusRequestEntityTooLarge, kindTooLarge,
				fmt.Sprintf("line %d is %d bytes; the limit per event is %d bytes", lineNo, len(line), h.cfg.MaxEventBytes))
			p.Index = intPtr(len(events))
			return nil, p
		}
		if len(events) == h.cfg.MaxBatchEvents {
			return nil, tooManyEvents(h.cfg.MaxBatchEvents)
		}
		ev := template
		if key != "" {
			ev.ID = key + "-" + strconv.Itoa(len(events))
		}
		ev.Payload = line
		events = append(events, ev)
	}
	if len(events) == 0 {
		return nil, newProblem(http.StatusBadRequest, kindInvalidRequest, "the batch holds no events: send one JSON payload per line")
	}
	return events, nil
}

func tooManyEvents(limit int) *Problem {
	return newProblem(http.StatusRequestEntityTooLarge, kindTooLarge,
		fmt.Sprintf("a batch holds at most %d events: split it", limit))
}

func intPtr(i int) *int { return &i }
