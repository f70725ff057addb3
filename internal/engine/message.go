package engine

import (
	"maps"
	"time"
)

// Header names the engine itself writes. Ingest keeps CloudEvents binary-mode
// headers (ce-*) as they came; these are the engine's own.
const (
	// HeaderDeadLetterError says why a message was dead-lettered.
	HeaderDeadLetterError = "x-dead-letter-error"
	// HeaderDeadLetterStream is the stream the dead-lettered message came from.
	HeaderDeadLetterStream = "x-dead-letter-stream"
	// HeaderDeadLetterHandler is the handler (projection) that gave up on it.
	HeaderDeadLetterHandler = "x-dead-letter-handler"
	// HeaderDeadLetterAttempts is how many times the handler tried it.
	HeaderDeadLetterAttempts = "x-dead-letter-attempts"
	// HeaderDeadLetterEventID is the id of the original event; the dead-letter
	// copy gets its own id so that it is idempotent within the dead-letter stream.
	HeaderDeadLetterEventID = "x-dead-letter-event-id"
	// HeaderDeadLetterSequence is the original event's sequence in its stream.
	HeaderDeadLetterSequence = "x-dead-letter-sequence"
	// HeaderDeadLetterKey and HeaderDeadLetterVersion are the original
	// event's key and version, when it had a key. The copy itself is
	// unkeyed: versions count the events of a key within its own stream.
	HeaderDeadLetterKey     = "x-dead-letter-key"
	HeaderDeadLetterVersion = "x-dead-letter-version"
)

// Message is one event as it travels through the engine: ingest builds it, the
// outbox holds it, the event store numbers it, the broker fans it out and the
// router hands it to handlers.
//
// Messages are passed by value. Handlers and middleware may set fields on their
// own copy (Deserialize sets Value) but must treat Headers and Payload as
// read-only: the broker shares them between subscribers. Use Clone before
// changing them.
type Message struct {
	// ID identifies the event. Appending an ID a stream already holds is a no-op.
	ID string
	// Name is the event's type, such as "ItemCreated".
	Name string
	// Stream is the log the event belongs to.
	Stream string
	// Sequence is the event's 1-based position within Stream, assigned by the
	// event store. Zero until the event is stored.
	Sequence uint64
	// Position is the event's 1-based position across all streams of one
	// event store, assigned on append. Zero until the event is stored.
	Position uint64
	// Key names the entity of Stream the event belongs to ("order-42");
	// empty for an unkeyed event. See docs/entities.md.
	Key string
	// Version is the event's 1-based position among its Key's events,
	// reserved when the event is accepted; 0 for an unkeyed event.
	Version uint64
	// Time is when the event was accepted.
	Time time.Time
	// Headers carry metadata such as CloudEvents attributes (ce-source, ...).
	Headers map[string]string
	// CorrelationID ties together every message caused by one request.
	CorrelationID string
	// CausationID is the ID of the message whose handling produced this one.
	CausationID string
	// ContentType is the wire format of Payload, e.g. "application/avro".
	ContentType string
	// Payload is the event body exactly as it was received.
	Payload []byte
	// Value is Payload decoded into a JSON-compatible value (map[string]any,
	// []any, string, float64, int64, bool or nil). Nil until decoded.
	Value any
}

// Clone returns a copy of m whose Headers and Payload can be changed without
// affecting m. Value is copied shallowly.
func (m Message) Clone() Message {
	m.Headers = maps.Clone(m.Headers)
	if m.Payload != nil {
		m.Payload = append([]byte(nil), m.Payload...)
	}
	return m
}

// Header returns the header value for key, or "" when absent.
func (m Message) Header(key string) string {
	return m.Headers[key]
}

// CausedBy returns m with its causation and correlation ids set from the
// message that produced it: the causation is cause's ID and the correlation is
// carried over unless m already has one.
func (m Message) CausedBy(cause Message) Message {
	m.CausationID = cause.ID
	if m.CorrelationID == "" {
		m.CorrelationID = cause.CorrelationID
	}
	return m
}
