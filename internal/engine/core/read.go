package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// Query returns the projection's read model as a JSON object; a projection
// that has applied nothing yet answers {}.
func (e *Engine) Query(ctx context.Context, projection string) ([]byte, error) {
	e.mu.Lock()
	_, ok := e.projections[projection]
	ok = ok || e.standby.hasProjection(projection)
	e.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrProjectionNotFound, projection)
	}
	doc, err := e.cfg.ReadModels.Document(ctx, projection)
	if errors.Is(err, readmodel.ErrNotFound) {
		return []byte("{}"), nil
	}
	return doc, err
}

// ReadStream returns up to limit stored events of a stream after the given
// sequence, with Value decoded by the stream's codecs. The dead-letter
// stream a stream names can be read too; its events decode with the codecs
// of the stream they came from.
func (e *Engine) ReadStream(ctx context.Context, name string, after uint64, limit int) ([]engine.Message, error) {
	if !e.readable(name) {
		return nil, fmt.Errorf("%w: %q", ErrStreamNotFound, name)
	}
	events, err := e.cfg.Store.Read(ctx, name, after, limit)
	if err != nil {
		return nil, err
	}
	e.decodeAll(events)
	return events, nil
}

// ReadKey returns up to limit events of one key of a stream with a version
// above after, and the key's current version. Every event accepted for the
// key before the call is included, stored or still in the outbox
// (read-your-writes); a key without events reads as empty at version 0.
func (e *Engine) ReadKey(ctx context.Context, stream, key string, after uint64, limit int) ([]engine.Message, uint64, error) {
	if _, ok := e.stream(stream); !ok {
		return nil, 0, fmt.Errorf("%w: %q", ErrStreamNotFound, stream)
	}
	if err := versions.ValidateKey(key); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	events, version, err := e.versions.ReadKey(ctx, stream, key, after, limit)
	if err != nil {
		return nil, 0, err
	}
	e.decodeAll(events)
	return events, version, nil
}

// decodeAll sets each event's Value.
func (e *Engine) decodeAll(events []engine.Message) {
	for i := range events {
		e.decode(&events[i])
	}
}

// decode sets m.Value, decoding with the codecs of the stream the event
// came from (for a dead letter, the stream it was posted to).
func (e *Engine) decode(m *engine.Message) {
	source := m.Stream
	if orig := m.Header(engine.HeaderDeadLetterStream); orig != "" {
		source = orig
	}
	// Payloads were validated at ingest; one that no longer decodes (the
	// schema changed since) is returned with Value nil.
	if v, err := e.Decode(source, m.ContentType, m.Payload); err == nil {
		m.Value = v
	}
}

// readable reports whether name is a stream or some stream's dead-letter stream.
func (e *Engine) readable(name string) bool {
	streams := *e.streams.Load()
	if _, ok := streams[name]; ok {
		return true
	}
	for _, s := range streams {
		if s.spec.DeadLetterStream == name {
			return true
		}
	}
	return false
}
