package eventstore

import (
	"context"
	"fmt"
	"slices"
)

// compactBatch is how many events one hold of the store's lock compacts at
// most, so that a large compaction does not stall appends and reads behind
// it: they get the lock between batches.
const compactBatch = 16 * chunkSize

var _ Compactor = (*Memory)(nil)

// Compact removes the stream's events with a sequence below before, except
// the last one, as Compactor.Compact says, and frees their memory: whole
// chunks of records and byte blocks (which hold their headers too) no
// retained event uses, and their entries in the ID and key indexes (each
// key keeps its version). It works in batches of compactBatch events, each
// under the store's lock.
func (m *Memory) Compact(ctx context.Context, stream string, before uint64) (int, error) {
	removed := 0
	for {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("compact stream %q: %w", stream, err)
		}
		n, more, err := m.compactBatch(stream, before)
		removed += n
		if err != nil || !more {
			return removed, err
		}
	}
}

// compactBatch compacts at most compactBatch events of stream below before
// and reports whether more remain to compact.
func (m *Memory) compactBatch(stream string, before uint64) (int, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, false, ErrClosed
	}
	l := m.streams[stream]
	if l == nil {
		return 0, false, nil
	}
	// The last event stays, so the stream's version does.
	end := min(before, l.version())
	first := l.dropped + 1
	if end <= first {
		return 0, false, nil
	}
	upTo := min(end, first+compactBatch)
	l.compact(upTo)
	return int(upTo - first), upTo < end, nil
}

// First returns the stream's first retained sequence, 0 when it has no event.
func (m *Memory) First(ctx context.Context, stream string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("first sequence of stream %q: %w", stream, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	l := m.streams[stream]
	if l == nil {
		return 0, nil
	}
	return l.first(), nil
}

// compact removes the events from the first retained one up to, not
// including, before, which must be at most the version.
func (l *streamLog) compact(before uint64) {
	oldBase := l.chunkBase()
	var keys map[uint32]struct{}
	for seq := l.dropped + 1; seq < before; seq++ {
		r := l.at(seq)
		l.forget(l.id(r), seq) // reads the block: before release
		l.release(r.block)
		if r.key != 0 {
			// The key's oldest retained event: compaction goes in sequence
			// order, and a key's versions follow its sequences.
			l.keys.dropOldest(r.key)
			if keys == nil {
				keys = make(map[uint32]struct{})
			}
			keys[r.key] = struct{}{}
		}
	}
	l.keys.trim(keys)
	l.dropped = before - 1

	if k := l.chunkBase() - oldBase; k > 0 {
		// A new slice, so the old one's array (and its hold on the dropped
		// chunks) goes too.
		l.chunks = slices.Clone(l.chunks[k:])
	}
	l.trimBlocks()
	l.ids.shrink()
}

// forget removes id, the ID of the event with sequence seq, from the index.
func (l *streamLog) forget(id string, seq uint64) {
	h := l.hash(id)
	if got, ok := l.ids.get(h); ok && got == seq {
		l.ids.remove(h)
		return
	}
	if got, ok := l.clashes[id]; ok && got == seq {
		delete(l.clashes, id)
		if len(l.clashes) == 0 {
			l.clashes = nil
		}
	}
}

// release counts one record less using block b and frees the block when no
// record uses it any more, unless it is the block being filled.
func (l *streamLog) release(b uint32) {
	i := b - l.blockBase
	l.refs[i]--
	if l.refs[i] == 0 && b != l.current {
		l.blocks[i] = nil
	}
}

// trimBlocks drops the freed blocks at the front of blocks.
func (l *streamLog) trimBlocks() {
	n := 0
	for n < len(l.blocks) && l.blocks[n] == nil {
		n++
	}
	if n == 0 {
		return
	}
	l.blocks = slices.Clone(l.blocks[n:])
	l.refs = slices.Clone(l.refs[n:])
	l.blockBase += uint32(n)
}
