package outbox

import "github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"

// chunkLen is how many entries one chunk of a Memory outbox holds: enough
// that a processor batch spans few chunks, few enough that a chunk kept
// alive by one pending entry costs little (about 26 KB).
const chunkLen = 128

// maxSpares is how many freed chunks a Memory keeps for reuse: enough for
// a few processor batches in flight (about 400 KB).
const maxSpares = 16

// chunk holds up to chunkLen entries with contiguous positions from first.
// It fills once, front to back, and is freed when every entry is dispatched.
type chunk struct {
	first      uint64
	n          int // entries filled
	dispatched int // entries dispatched
	entries    [chunkLen]Entry
	gone       [chunkLen]bool // gone[i]: entries[i] is dispatched
}

// fill appends as many of msgs as fit, from position pos on, and says how
// many it took.
func (c *chunk) fill(pos uint64, msgs []engine.Message) int {
	n := min(chunkLen-c.n, len(msgs))
	for i, msg := range msgs[:n] {
		c.entries[c.n+i] = Entry{Position: pos + uint64(i), Message: msg}
	}
	c.n += n
	return n
}

// holds reports whether pos is one of the chunk's filled positions.
func (c *chunk) holds(pos uint64) bool {
	return pos >= c.first && pos < c.first+uint64(c.n)
}

// dispatch marks the entry at pos, which the chunk holds; false when it
// already was.
func (c *chunk) dispatch(pos uint64) bool {
	i := pos - c.first
	if c.gone[i] {
		return false
	}
	c.gone[i] = true
	c.entries[i].Message = engine.Message{} // let the message be collected
	c.dispatched++
	return true
}

// done reports whether the chunk is full and every entry dispatched.
func (c *chunk) done() bool { return c.dispatched == chunkLen }

// appendLive appends the chunk's live entries with a position after the
// given one to out, up to n in all.
func (c *chunk) appendLive(out []Entry, after uint64, n int) []Entry {
	if c.dispatched == c.n {
		return out
	}
	start := 0
	if after >= c.first {
		start = int(min(after-c.first+1, uint64(c.n)))
	}
	for i := start; i < c.n && len(out) < n; i++ {
		if !c.gone[i] {
			out = append(out, c.entries[i])
		}
	}
	return out
}

// copyLive copies the chunk's live entries into msgs and positions, as many
// as fit, and says how many.
func (c *chunk) copyLive(msgs []engine.Message, positions []uint64) int {
	if c.dispatched == c.n {
		return 0
	}
	n := 0
	for i := 0; i < c.n && n < len(msgs); i++ {
		if !c.gone[i] {
			msgs[n], positions[n] = c.entries[i].Message, c.entries[i].Position
			n++
		}
	}
	return n
}

// reset empties a done chunk for reuse; its messages were cleared when
// they were dispatched.
func (c *chunk) reset() {
	c.n, c.dispatched = 0, 0
	clear(c.gone[:])
}
