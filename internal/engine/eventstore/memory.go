package eventstore

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// Memory is a Store that keeps every event in process memory, for tests and
// --storage=memory. It is safe for concurrent use.
//
// Events are kept compactly (about 320 bytes of heap for an event with a
// 100-byte payload, see TestMemoryStoreHoldsOneMillionEventsUnder400MB, and
// no pointer per event for the garbage collector to scan): Value is not
// stored, and an empty Payload or Headers reads back as nil.
type Memory struct {
	// done is closed by Close; blocked subscriptions wait on it.
	done chan struct{}

	mu       sync.RWMutex
	closed   bool
	position uint64
	streams  map[string]*streamLog
	strings  stringTable
	// seed keys the hash of every stream's ID index.
	seed maphash.Seed
	// waiters holds, per stream, a channel closed on that stream's next
	// append. It exists only while a subscription waits, so appends nobody
	// waits for allocate nothing for it.
	waiters map[string]chan struct{}
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		done:    make(chan struct{}),
		streams: make(map[string]*streamLog),
		waiters: make(map[string]chan struct{}),
		seed:    maphash.MakeSeed(),
	}
}

// Append adds events to stream as Store.Append says. Duplicates are found by
// ID against the stream and within events; all events are stored or none.
// An empty events slice stores nothing and checks nothing.
//
// The events returned for new events are the given ones with Stream,
// Sequence, Position, Time and Version set (and Value dropped, as the store
// keeps no values): they share Headers and Payload with the caller, which the store
// itself copied. An event already stored is returned as Read returns it.
func (m *Memory) Append(ctx context.Context, stream string, expected ExpectedVersion, events []engine.Message) (AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return AppendResult{}, fmt.Errorf("append to stream %q: %w", stream, err)
	}
	if err := ValidateAppend(stream, expected, events); err != nil {
		return AppendResult{}, err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return AppendResult{}, ErrClosed
	}
	l := m.streams[stream]
	version := l.version()
	// The expected version binds only an append that adds something: when
	// every event is already stored, a retried append succeeds.
	if expected != Any && uint64(expected) != version && l.holdsAny(events, false) {
		return AppendResult{}, &ConflictError{Stream: stream, Expected: expected, Actual: version}
	}
	var versions []uint64
	if HasKeys(events) {
		var err error
		if versions, err = l.numberKeys(stream, events); err != nil {
			return AppendResult{}, err
		}
	}

	if l == nil {
		l = newStreamLog(m.seed)
		m.streams[stream] = l
	}
	// Each event is looked up and, when new, stored at once, so an ID that
	// comes twice in events is found as stored the second time.
	hashes := l.prefetch(events)
	now := time.Now().UTC()
	out := make([]engine.Message, len(events))
	for i := range events {
		var v uint64
		if versions != nil {
			v = versions[i]
		}
		if l.pushNew(&out[i], &events[i], hashes[i], m.position+1, v, now, &m.strings, stream) {
			m.position++
		}
	}
	if l.version() > version {
		if ch, ok := m.waiters[stream]; ok {
			close(ch)
			delete(m.waiters, stream)
		}
	}
	return AppendResult{Events: out, Appended: int(l.version() - version), LastSequence: l.version()}, nil
}

// Read returns up to limit events of stream after the given sequence, in
// order; a limit of zero or less means DefaultReadLimit. After a compaction
// it reads from the first retained event when after is below it.
func (m *Memory) Read(ctx context.Context, stream string, after uint64, limit int) ([]engine.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read stream %q: %w", stream, err)
	}
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	return m.readLocked(stream, after, limit), nil
}

// readLocked reads under m.mu (shared or exclusive).
func (m *Memory) readLocked(stream string, after uint64, limit int) []engine.Message {
	l := m.streams[stream]
	version := l.version()
	if after >= version {
		return nil
	}
	// Compacted events read as if the stream started after them.
	after = max(after, l.dropped)
	n := int(min(version-after, uint64(limit)))
	return l.messages(stream, &m.strings, n, func(i int) uint64 { return after + 1 + uint64(i) })
}

// ReadKey returns up to limit events of key in stream after the given
// version, in order; a limit of zero or less means DefaultReadLimit. It
// finds them through the key's own list of sequences. After a compaction it
// reads from the key's first retained event when after is below it.
func (m *Memory) ReadKey(ctx context.Context, stream, key string, after uint64, limit int) ([]engine.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read key %q of stream %q: %w", key, stream, err)
	}
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	return m.streams[stream].readKey(stream, key, &m.strings, after, limit), nil
}

// KeyVersion returns the key's version in stream, 0 when it has no event.
func (m *Memory) KeyVersion(ctx context.Context, stream, key string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("version of key %q of stream %q: %w", key, stream, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.streams[stream].keyVersion(key), nil
}

// Lookup returns the retained event of stream with that ID.
func (m *Memory) Lookup(ctx context.Context, stream, id string) (engine.Message, bool, error) {
	if err := ctx.Err(); err != nil {
		return engine.Message{}, false, fmt.Errorf("look up id %q in stream %q: %w", id, stream, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return engine.Message{}, false, ErrClosed
	}
	l := m.streams[stream]
	seq, ok := l.lookup(id)
	if !ok {
		return engine.Message{}, false, nil
	}
	return l.messages(stream, &m.strings, 1, func(int) uint64 { return seq })[0], true, nil
}

// Version returns the stream's last sequence, 0 for an unknown stream.
func (m *Memory) Version(ctx context.Context, stream string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("version of stream %q: %w", stream, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.streams[stream].version(), nil
}

// Subscribe returns a subscription to stream after the given sequence. It
// starts no goroutine: each Next reads from the store and waits only when it
// has caught up. ctx bounds this call alone.
func (m *Memory) Subscribe(ctx context.Context, stream string, after uint64) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribe to stream %q: %w", stream, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	return &memorySubscription{store: m, stream: stream, after: after, done: make(chan struct{})}, nil
}

// poll returns up to limit events of stream after the given sequence or,
// when there are none yet, a channel closed on the stream's next append.
// Reading and taking the channel under one lock is what leaves no gap.
func (m *Memory) poll(stream string, after uint64, limit int) ([]engine.Message, <-chan struct{}, error) {
	// The shared lock serves the common case, a subscription with events to
	// read; only a caught-up one takes the exclusive lock to register.
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return nil, nil, ErrClosed
	}
	events := m.readLocked(stream, after, limit)
	m.mu.RUnlock()
	if len(events) > 0 {
		return events, nil, nil
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, ErrClosed
	}
	if events := m.readLocked(stream, after, limit); len(events) > 0 {
		return events, nil, nil
	}
	ch, ok := m.waiters[stream]
	if !ok {
		ch = make(chan struct{})
		m.waiters[stream] = ch
	}
	return nil, ch, nil
}

// Close drops every event and ends every subscription; later calls return
// ErrClosed. Closing again is a no-op.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	close(m.done)
	m.streams, m.waiters, m.strings = nil, nil, stringTable{}
	return nil
}
