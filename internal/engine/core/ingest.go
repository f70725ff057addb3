package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

// Event is one event offered to Ingest.
type Event struct {
	// ID makes the event idempotent within its stream; empty gets a UUIDv7.
	ID string
	// Name is the event's type; empty gets the stream's DefaultEventName.
	Name string
	// CorrelationID ties related events together; empty gets a new one.
	CorrelationID string
	// ContentType is the payload's wire format; empty means JSON.
	ContentType string
	Headers     map[string]string
	Payload     []byte
}

// ErrNoEventName means neither the request nor the stream names the event.
var ErrNoEventName = errors.New("event has no name")

// PayloadError says which event of a request was refused, and why: its
// payload does not decode with the stream's schema, or it has no name.
type PayloadError struct {
	// Index is the event's position in the request, from 0.
	Index int
	Err   error
}

func (e *PayloadError) Error() string { return fmt.Sprintf("event %d: %v", e.Index, e.Err) }

// Unwrap returns the decoder's error.
func (e *PayloadError) Unwrap() error { return e.Err }

// Ingest validates events against the stream and puts them in the outbox,
// all or none. It returns the messages as enqueued (ids, names, times).
//
// Errors: ErrStreamNotFound; serde.ErrUnsupportedContentType when the stream
// does not accept a content type; *PayloadError for a payload that does not
// decode; outbox.ErrFull when the outbox is at its limit (nothing stored);
// ErrStopped during shutdown.
func (e *Engine) Ingest(ctx context.Context, streamName string, events []Event) ([]engine.Message, error) {
	if e.stopped.Load() {
		return nil, ErrStopped
	}
	s, ok := e.stream(streamName)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrStreamNotFound, streamName)
	}
	now := time.Now().UTC()
	msgs := make([]engine.Message, len(events))
	for i, ev := range events {
		m, err := s.message(ev, now)
		if err != nil {
			if errors.Is(err, serde.ErrUnsupportedContentType) {
				return nil, err
			}
			return nil, &PayloadError{Index: i, Err: err}
		}
		msgs[i] = m
	}
	if err := e.cfg.Outbox.Enqueue(ctx, msgs); err != nil {
		return nil, err
	}
	return msgs, nil
}

// message validates one event and builds its message.
func (s *stream) message(ev Event, now time.Time) (engine.Message, error) {
	ct := serde.JSON
	if ev.ContentType != "" {
		ct = serde.NormalizeContentType(ev.ContentType)
	}
	if _, err := s.codecs.Decode(ct, ev.Payload); err != nil {
		return engine.Message{}, err
	}
	name := ev.Name
	if name == "" {
		name = s.spec.DefaultEventName
	}
	if name == "" {
		return engine.Message{}, fmt.Errorf("%w: give one (the ce-type header or ?name=) or set the stream's defaultEventName", ErrNoEventName)
	}
	m := engine.Message{
		ID:            ev.ID,
		Name:          name,
		Stream:        s.spec.Name,
		Time:          now,
		Headers:       ev.Headers,
		CorrelationID: ev.CorrelationID,
		ContentType:   ct,
		Payload:       ev.Payload,
	}
	if m.ID == "" {
		m.ID = newID()
	}
	if m.CorrelationID == "" {
		m.CorrelationID = newID()
	}
	return m, nil
}

// newID returns a UUIDv7: unique and ordered by time, which keeps ids of one
// stream close together in indexes.
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// Only a failing random source gets here; a v4 id is as unique.
		return uuid.NewString()
	}
	return id.String()
}
