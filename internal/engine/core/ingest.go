package core

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// Event is one event offered to Ingest.
type Event struct {
	// ID makes the event idempotent within its stream; empty gets a UUIDv7.
	ID string
	// Name is the event's type; empty gets the stream's DefaultEventName.
	Name string
	// CorrelationID ties related events together; empty gets a new one.
	CorrelationID string
	// CausationID is the id of the event whose handling produced this
	// one (a Reactor's reply); empty for events from outside.
	CausationID string
	// ContentType is the payload's wire format; empty means JSON.
	ContentType string
	// Key names the entity of the stream the event belongs to; empty for
	// an unkeyed event. It gets the key's next version (docs/entities.md).
	Key string
	// Headers are kept with the event as metadata (CloudEvents ce-* attributes).
	Headers map[string]string
	// Payload is the event body in ContentType's format.
	Payload []byte
}

// HeaderUser is the event header naming who posted the event: the user
// name the Kubernetes API gave the bearer token of the ingest request. Only
// the HTTP API sets it, from its Guard; no event takes it from a client or
// a sink, not even as the CloudEvents attribute of that name.
const HeaderUser = "x-eventsourcing-user"

// ErrInvalidKey means an event's key breaks the rules of docs/entities.md.
var ErrInvalidKey = errors.New("invalid key")

// ErrNoEventName means neither the request nor the stream names the event.
var ErrNoEventName = errors.New("event has no name")

// PayloadError says which event of a request was refused, and why: its
// payload does not validate with the stream's schema, it has no name, or
// its key is not a valid key (ErrInvalidKey).
type PayloadError struct {
	// Index is the event's position in the request, from 0.
	Index int
	Err   error
}

func (e *PayloadError) Error() string { return fmt.Sprintf("event %d: %v", e.Index, e.Err) }

// Unwrap returns the codec's error.
func (e *PayloadError) Unwrap() error { return e.Err }

// Ingest appends events without a version condition; see IngestIf.
func (e *Engine) Ingest(ctx context.Context, streamName string, events []Event) ([]engine.Message, error) {
	return e.IngestIf(ctx, streamName, events, versions.Any)
}

// IngestIf validates events against the stream and puts them in the outbox,
// all or none, when expect holds for the version of their key. It returns,
// per event, the message as enqueued (ids, names, times, keys and versions),
// or, for an event whose ID the stream already has, that earlier event (at
// least its ID, key and version), which is not enqueued again.
//
// A payload is checked as the stream's codec validates it, without building
// its value (see serde.Validator): for JSON that is the syntax check of
// encoding/json, so a number beyond a float64's range (1e400) is accepted
// here and is a permanent error only for a projection that reads the
// event's value.
//
// Ingest copies every Payload and Headers map once, so the caller may reuse
// its buffers as soon as Ingest returns. The returned messages share those
// copies with the outbox: treat their Headers and Payload as read-only.
//
// Errors: ErrStreamNotFound; serde.ErrUnsupportedContentType when the stream
// does not accept a content type; *PayloadError for a payload that does not
// validate or whose key is not one (versions.ValidateKey); outbox.ErrFull
// when the outbox is at its limit (nothing stored); *versions.ConflictError
// when expect does not hold; versions.ErrConditionNeedsOneKey for a
// condition on events of several keys or none; ErrStopped during shutdown.
func (e *Engine) IngestIf(ctx context.Context, streamName string, events []Event, expect versions.Expect) ([]engine.Message, error) {
	return e.ingest(ctx, streamName, events, expect, true)
}

// ingest is IngestIf; without copyBuffers it keeps the events' Payload and
// Headers as they are, for a caller that built them for this call alone
// and never touches them again (a reactor's replies).
func (e *Engine) ingest(ctx context.Context, streamName string, events []Event, expect versions.Expect,
	copyBuffers bool) ([]engine.Message, error) {
	if e.stopped.Load() {
		return nil, ErrStopped
	}
	s, ok := e.stream(streamName)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrStreamNotFound, streamName)
	}
	// Under overload most calls are refused; refusing before validating
	// leaves the CPU to the processor that drains the outbox.
	if r, ok := e.cfg.Outbox.(roomChecker); ok && !r.HasRoom(len(events)) {
		return nil, outbox.ErrFull
	}
	now := time.Now().UTC()
	msgs := make([]engine.Message, len(events))
	payloadBytes, idsNeeded := 0, 0
	for i := range events {
		ev := &events[i]
		if err := s.message(&msgs[i], ev, now); err != nil {
			if errors.Is(err, serde.ErrUnsupportedContentType) {
				return nil, err
			}
			return nil, &PayloadError{Index: i, Err: err}
		}
		payloadBytes += len(ev.Payload)
		idsNeeded += countEmpty(ev.ID, ev.CorrelationID)
	}
	if copyBuffers {
		ownCopies(msgs, payloadBytes)
	}
	var generated []bool // which IDs are new here, so nobody can hold them
	if idsNeeded > 0 {
		ids := newIDs(now, idsNeeded)
		for i := range msgs {
			if msgs[i].ID == "" {
				if generated == nil {
					generated = make([]bool, len(msgs))
				}
				msgs[i].ID, ids = ids.next()
				generated[i] = true
			}
			if msgs[i].CorrelationID == "" {
				msgs[i].CorrelationID, ids = ids.next()
			}
		}
	}
	if e.cfg.Appender != nil {
		if expect != versions.Any && !versions.OneKey(msgs) {
			return nil, versions.ErrConditionNeedsOneKey
		}
		stored, err := e.cfg.Appender.AppendAccepted(ctx, s.spec.Name, msgs, generated, expect)
		if err == nil {
			s.appended.Add(now, countAcceptedAt(stored, now))
		}
		return stored, err
	}
	req := versions.Request{Stream: s.spec.Name, Events: msgs, Generated: generated, Expect: expect}
	return e.versions.Accept(ctx, req, func(fresh []engine.Message) error {
		if err := e.cfg.Outbox.Enqueue(ctx, fresh); err != nil {
			return err
		}
		s.appended.Add(now, len(fresh))
		return nil
	})
}

// message validates one event and builds its message in *m (in place: a
// message is 200 bytes). The ids may still be empty, and Payload and
// Headers are still the caller's.
func (s *stream) message(m *engine.Message, ev *Event, now time.Time) error {
	ct := serde.JSON
	if ev.ContentType != "" {
		ct = serde.NormalizeContentType(ev.ContentType)
	}
	if ev.Key != "" {
		if err := versions.ValidateKey(ev.Key); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
	}
	if err := s.codecs.Validate(ct, ev.Payload); err != nil {
		return err
	}
	name := ev.Name
	if name == "" {
		name = s.spec.DefaultEventName
	}
	if name == "" {
		return fmt.Errorf("%w: give one (the ce-type header or ?name=) or set the stream's defaultEventName", ErrNoEventName)
	}
	m.ID = ev.ID
	m.Name = name
	m.Stream = s.spec.Name
	m.Key = ev.Key
	m.Time = now
	m.Headers = ev.Headers
	m.CorrelationID = ev.CorrelationID
	m.CausationID = ev.CausationID
	m.ContentType = ct
	m.Payload = ev.Payload
	return nil
}

// ownCopies replaces the caller's payloads and headers in msgs with copies:
// the payloads share one new buffer of size bytes (each capped at its own
// length), so a batch costs one allocation for them.
func ownCopies(msgs []engine.Message, size int) {
	buf := make([]byte, 0, size)
	for i := range msgs {
		m := &msgs[i]
		if m.Payload != nil {
			start := len(buf)
			buf = append(buf, m.Payload...)
			m.Payload = buf[start:len(buf):len(buf)]
		}
		if len(m.Headers) > 0 {
			m.Headers = maps.Clone(m.Headers)
		}
	}
}

// roomChecker is implemented by outboxes that can tell cheaply whether n
// more entries fit, as outbox.Memory does.
type roomChecker interface {
	HasRoom(n int) bool
}

func countEmpty(a, b string) int {
	n := 0
	if a == "" {
		n++
	}
	if b == "" {
		n++
	}
	return n
}
