package outbox

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// DefaultCapacity is the capacity of a Memory outbox created with capacity <= 0.
const DefaultCapacity = 10000

// Memory is an in-process Outbox. It is not durable: its entries are lost when
// the process ends. It is safe for concurrent use.
//
// Entries live in fixed-size chunks, oldest first, so that neither Enqueue
// nor MarkDispatched ever moves the entries already queued: a queue that
// grew by copying would hold the lock for a copy of every pending entry,
// and 64 HTTP handlers enqueueing at once would wait on it. Marking the
// oldest entries (the processor's usual case) frees whole chunks from the
// head; marking out of order leaves holes, and a chunk is freed once all of
// its entries are dispatched, wherever it is in the queue.
type Memory struct {
	capacity int
	signal   chan struct{}

	mu     sync.Mutex
	chunks []*chunk // in position order; none is empty of live entries but the last
	live   int      // entries not yet dispatched
	// room mirrors capacity-live for HasRoom, which takes no lock.
	room   atomic.Int64
	next   uint64   // position of the next enqueued entry
	spares []*chunk // freed chunks kept for reuse, at most maxSpares
	closed bool
}

var _ Outbox = (*Memory)(nil)

// NewMemory returns an empty Memory outbox holding at most capacity entries;
// capacity <= 0 means DefaultCapacity.
func NewMemory(capacity int) *Memory {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	m := &Memory{
		capacity: capacity,
		signal:   make(chan struct{}, 1),
		next:     1,
	}
	m.room.Store(int64(capacity))
	return m
}

// HasRoom reports whether n more entries would fit now, without taking the
// lock: a caller can refuse work early under overload. Enqueue still
// decides.
func (m *Memory) HasRoom(n int) bool {
	return m.room.Load() >= int64(n)
}

// Enqueue adds msgs, all or none, and signals the processor. It returns
// ErrFull when they would take the outbox past its capacity.
//
// The outbox copies each Message but not what its Headers and Payload refer
// to: as everywhere in the engine, those are read-only once handed on (see
// engine.Message), so the caller may reuse msgs but must not change the maps
// or bytes afterwards. Ingest makes the one copy of what a client sent.
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
	for len(msgs) > 0 {
		c := m.tailLocked()
		n := c.fill(m.next, msgs)
		m.next += uint64(n)
		msgs = msgs[n:]
		m.live += n
	}
	m.room.Store(int64(m.capacity - m.live))
	m.mu.Unlock()

	// Non-blocking: a full buffer already holds a wake-up for these messages.
	select {
	case m.signal <- struct{}{}:
	default:
	}
	return nil
}

// tailLocked returns the chunk that takes the next entry, starting one when
// the last is full.
func (m *Memory) tailLocked() *chunk {
	if n := len(m.chunks); n > 0 && m.chunks[n-1].n < chunkLen {
		return m.chunks[n-1]
	}
	var c *chunk
	if n := len(m.spares); n > 0 {
		c, m.spares = m.spares[n-1], m.spares[:n-1]
	} else {
		c = new(chunk)
	}
	c.first = m.next
	m.chunks = append(m.chunks, c)
	return c
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
	for _, c := range m.chunks {
		out = c.appendLive(out, 0, n)
		if len(out) == n {
			break
		}
	}
	return out, nil
}

// Scan calls fn with every pending entry, oldest first, as Outbox.Scan
// says: a page of ScanPage entries at a time, none of them under the lock.
func (m *Memory) Scan(ctx context.Context, fn func(Entry) error) error {
	page := make([]Entry, 0, ScanPage)
	var after uint64 // the position of the last entry visited
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		var err error
		if page, err = m.pendingAfter(after, page[:0]); err != nil || len(page) == 0 {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		after = page[len(page)-1].Position
		clear(page) // let dispatched messages go while the next page is read
	}
}

// pendingAfter appends to out, up to its capacity, the pending entries
// with a position after the given one, oldest first.
func (m *Memory) pendingAfter(after uint64, out []Entry) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	k := sort.Search(len(m.chunks), func(i int) bool { return m.chunks[i].first+chunkLen > after+1 })
	for _, c := range m.chunks[k:] {
		if out = c.appendLive(out, after, cap(out)); len(out) == cap(out) {
			break
		}
	}
	return out, nil
}

// PendingInto copies up to len(msgs) entries not yet dispatched, oldest
// first, into msgs and positions (which must be as long) without removing
// them, and says how many. It is Pending for a caller that reuses its
// buffers; the messages are read-only as Pending's are.
func (m *Memory) PendingInto(ctx context.Context, msgs []engine.Message, positions []uint64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("pending: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	n := 0
	for _, c := range m.chunks {
		n += c.copyLive(msgs[n:], positions[n:])
		if n == len(msgs) {
			break
		}
	}
	return n, nil
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
	freed := false
	for _, pos := range positions {
		k, ok := m.chunkLocked(pos)
		if !ok || !m.chunks[k].dispatch(pos) {
			continue
		}
		m.live--
		if m.chunks[k].done() {
			freed = true
		}
	}
	if freed {
		m.dropDoneLocked()
	}
	m.room.Store(int64(m.capacity - m.live))
	return nil
}

// chunkLocked finds the index of the chunk holding pos.
func (m *Memory) chunkLocked(pos uint64) (int, bool) {
	if len(m.chunks) == 0 || pos < m.chunks[0].first || pos >= m.next {
		return 0, false
	}
	// Fast path: until a chunk is freed out of order, chunks are contiguous
	// and the offset from the first one's position gives the index.
	if k := int((pos - m.chunks[0].first) / chunkLen); k < len(m.chunks) && m.chunks[k].holds(pos) {
		return k, true
	}
	k := sort.Search(len(m.chunks), func(i int) bool { return m.chunks[i].first+chunkLen > pos })
	if k < len(m.chunks) && m.chunks[k].holds(pos) {
		return k, true
	}
	return 0, false
}

// dropDoneLocked frees the chunks whose entries are all dispatched, keeping
// up to maxSpares to reuse: a recycled chunk is likely still in the CPU's
// cache and costs the garbage collector nothing. The chunk list holds
// pointers, so this moves little.
func (m *Memory) dropDoneLocked() {
	kept := m.chunks[:0]
	for _, c := range m.chunks {
		if !c.done() {
			kept = append(kept, c)
			continue
		}
		if len(m.spares) < maxSpares {
			c.reset()
			m.spares = append(m.spares, c)
		}
	}
	clear(m.chunks[len(kept):])
	m.chunks = kept
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
	m.chunks, m.spares, m.live = nil, nil, 0
	return nil
}
