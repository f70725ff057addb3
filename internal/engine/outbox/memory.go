package outbox

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// DefaultCapacity is the capacity of a Memory outbox created with capacity <= 0.
const DefaultCapacity = 10000

// compactAfter is how many dead slots (dispatched, or before head) a Memory
// tolerates before it compacts; below it, copying would cost more than it saves.
const compactAfter = 1024

// slot is one entry in the queue; dispatched marks an entry removed out of
// order, which stays in place until it reaches the head or a compaction.
type slot struct {
	entry      Entry
	dispatched bool
}

// Memory is an in-process Outbox. It is not durable: its entries are lost when
// the process ends. It is safe for concurrent use.
//
// Entries live in a slice ordered by position with a head index. Marking the
// oldest entries (the processor's usual case) advances the head in O(1);
// marking out of order finds the slot by binary search and leaves a hole that
// later compaction removes.
type Memory struct {
	capacity int
	signal   chan struct{}

	mu     sync.Mutex
	slots  []slot
	head   int    // index of the first slot that may be live
	live   int    // entries not yet dispatched
	holes  int    // dispatched slots at or after head
	next   uint64 // position of the next enqueued entry
	closed bool
}

var _ Outbox = (*Memory)(nil)

// NewMemory returns an empty Memory outbox holding at most capacity entries;
// capacity <= 0 means DefaultCapacity.
func NewMemory(capacity int) *Memory {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Memory{
		capacity: capacity,
		signal:   make(chan struct{}, 1),
		next:     1,
	}
}

// Enqueue adds copies of msgs (their Headers and Payload included, so callers
// may reuse them), all or none, and signals the processor. It returns ErrFull
// when they would take the outbox past its capacity.
func (m *Memory) Enqueue(ctx context.Context, msgs []engine.Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	if len(msgs) == 0 {
		return nil
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if m.live+len(msgs) > m.capacity {
		m.mu.Unlock()
		// The bare sentinel: refusals come in floods under overload, and
		// each should cost no allocation.
		return ErrFull
	}
	m.compactLocked()
	for _, msg := range msgs {
		m.slots = append(m.slots, slot{entry: Entry{Position: m.next, Message: msg.Clone()}})
		m.next++
	}
	m.live += len(msgs)
	m.mu.Unlock()

	// Non-blocking: a full buffer already holds a wake-up for these messages.
	select {
	case m.signal <- struct{}{}:
	default:
	}
	return nil
}

// Pending returns up to limit entries not yet dispatched, oldest first,
// without removing them. The messages share Headers and Payload with the
// outbox and must be treated as read-only.
func (m *Memory) Pending(ctx context.Context, limit int) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pending: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	n := min(limit, m.live)
	if n <= 0 {
		return nil, nil
	}
	out := make([]Entry, 0, n)
	for i := m.head; i < len(m.slots) && len(out) < n; i++ {
		if !m.slots[i].dispatched {
			out = append(out, m.slots[i].entry)
		}
	}
	return out, nil
}

// MarkDispatched removes the entries at positions. Unknown or already
// dispatched positions are ignored.
func (m *Memory) MarkDispatched(ctx context.Context, positions []uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mark dispatched: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for _, pos := range positions {
		i, ok := m.indexLocked(pos)
		if !ok || m.slots[i].dispatched {
			continue
		}
		m.slots[i].dispatched = true
		m.slots[i].entry.Message = engine.Message{} // let the message be collected
		m.live--
		m.holes++
	}
	// Advance the head over every dispatched slot; they stop being holes.
	for m.head < len(m.slots) && m.slots[m.head].dispatched {
		m.head++
		m.holes--
	}
	if m.live == 0 {
		m.slots, m.head, m.holes = m.slots[:0], 0, 0
	}
	return nil
}

// indexLocked finds the slot holding pos among the slots from head on.
func (m *Memory) indexLocked(pos uint64) (int, bool) {
	if m.head >= len(m.slots) {
		return 0, false
	}
	// Fast path: until a compaction drops holes, positions from head on are
	// contiguous, so the offset from the head's position is the index.
	if first := m.slots[m.head].entry.Position; pos >= first && pos-first < uint64(len(m.slots)-m.head) {
		if i := m.head + int(pos-first); m.slots[i].entry.Position == pos {
			return i, true
		}
	}
	// Positions increase with the index, holes included (they keep theirs).
	rest := m.slots[m.head:]
	j := sort.Search(len(rest), func(k int) bool { return rest[k].entry.Position >= pos })
	if j < len(rest) && rest[j].entry.Position == pos {
		return m.head + j, true
	}
	return 0, false
}

// compactLocked drops dead slots once they outnumber the live ones, so memory
// stays proportional to the pending entries and each slot is copied O(1)
// times on average.
func (m *Memory) compactLocked() {
	dead := m.head + m.holes
	if dead < compactAfter || dead < m.live {
		return
	}
	kept := m.slots[:0]
	for _, s := range m.slots[m.head:] {
		if !s.dispatched {
			kept = append(kept, s)
		}
	}
	clear(m.slots[len(kept):])
	m.slots, m.head, m.holes = kept, 0, 0
}

// Len returns the number of entries not yet dispatched.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live
}

// Signal receives a value after an Enqueue. Several enqueues may share one
// value: the channel has a buffer of one and Enqueue never blocks on it.
func (m *Memory) Signal() <-chan struct{} {
	return m.signal
}

// Close drops the pending entries; Enqueue, Pending and MarkDispatched then
// return ErrClosed. Closing twice is harmless.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.slots, m.head, m.live, m.holes = nil, 0, 0, 0
	return nil
}
