package outboxlog

import (
	"sort"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

// pendingIndex holds the log's undispatched entries in memory, in position
// order, so the processor never reads the log back. Entries join at the
// tail (the committer adds each group after its fsync); the processor
// marks mostly from the head, and an entry marked out of order stays as a
// tombstone until the ones before it go.
type pendingIndex struct {
	q    []indexEntry // positions ascending; q[:head] are gone
	head int
	live int
}

type indexEntry struct {
	outbox.Entry
	gone bool
}

// add appends msgs at consecutive positions from first, which is past every
// position the index holds.
func (x *pendingIndex) add(first uint64, msgs []engine.Message) {
	for i := range msgs {
		x.q = append(x.q, indexEntry{Entry: outbox.Entry{Position: first + uint64(i), Message: msgs[i]}})
	}
	x.live += len(msgs)
}

// dispatch marks the entry at pos; false when it is not pending.
func (x *pendingIndex) dispatch(pos uint64) bool {
	q := x.q[x.head:]
	i := sort.Search(len(q), func(i int) bool { return q[i].Position >= pos })
	if i == len(q) || q[i].Position != pos || q[i].gone {
		return false
	}
	q[i].gone = true
	q[i].Message = engine.Message{} // let the message be collected
	x.live--
	return true
}

// pending reports whether pos is an undispatched entry.
func (x *pendingIndex) pending(pos uint64) bool {
	q := x.q[x.head:]
	i := sort.Search(len(q), func(i int) bool { return q[i].Position >= pos })
	return i < len(q) && q[i].Position == pos && !q[i].gone
}

// trim drops the tombstones at the head, and moves the rest to the front
// of the slice once the dropped part is the larger: the copy is then paid
// for by as many dispatches.
func (x *pendingIndex) trim() {
	for x.head < len(x.q) && x.q[x.head].gone {
		x.head++
	}
	if x.head == len(x.q) {
		clear(x.q)
		x.q, x.head = x.q[:0], 0
		return
	}
	if x.head > 1024 && x.head > len(x.q)/2 {
		n := copy(x.q, x.q[x.head:])
		clear(x.q[n:])
		x.q, x.head = x.q[:n], 0
	}
}

// copyLive copies up to len(msgs) pending entries, oldest first, into msgs
// and positions and says how many.
func (x *pendingIndex) copyLive(msgs []engine.Message, positions []uint64) int {
	n := 0
	for i := x.head; i < len(x.q) && n < len(msgs); i++ {
		if e := &x.q[i]; !e.gone {
			msgs[n], positions[n] = e.Message, e.Position
			n++
		}
	}
	return n
}

// appendLive appends up to n pending entries with a position after the
// given one, oldest first, to out.
func (x *pendingIndex) appendLive(out []outbox.Entry, after uint64, n int) []outbox.Entry {
	q := x.q[x.head:]
	start := x.head + sort.Search(len(q), func(i int) bool { return q[i].Position > after })
	for i := start; i < len(x.q) && len(out) < n; i++ {
		if !x.q[i].gone {
			out = append(out, x.q[i].Entry)
		}
	}
	return out
}
