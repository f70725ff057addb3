package eventstore

// indexShardBits sets how many shards an idIndex has. Each shard grows on
// its own, so a growth copies 1/64 of the index while the store is locked.
const indexShardBits = 6

// minIndexSlots is a shard's size when it first takes an entry.
const minIndexSlots = 16

// idIndex maps the 64-bit hash of each event ID of a stream to its sequence:
// open addressing with linear probing over plain slots. It replaces a Go map
// for two reasons. Its slots hold no pointer, so the garbage collector skips
// it. And a lookup is one load at a known address, which lets Append touch
// the slots of a whole batch before it looks any up: the memory system then
// fetches them in parallel, where one lookup after another would wait for
// each miss of an index far larger than the CPU's caches in turn.
//
// Hash 0 marks an empty slot, so a hash of 0 is stored as 1 (idHash).
type idIndex struct {
	shards [1 << indexShardBits]indexShard
}

type indexShard struct {
	slots []indexSlot // len is a power of two, or 0
	used  int
}

type indexSlot struct {
	hash uint64
	seq  uint64
}

// idHash is the index's form of a maphash: never 0.
func idHash(h uint64) uint64 {
	return max(h, 1)
}

func (x *idIndex) shard(h uint64) *indexShard {
	return &x.shards[h>>(64-indexShardBits)]
}

// get returns the sequence stored for hash h.
func (x *idIndex) get(h uint64) (uint64, bool) {
	s := x.shard(h)
	if len(s.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i].hash {
		case h:
			return s.slots[i].seq, true
		case 0:
			return 0, false
		}
	}
}

// touch reads the slot where a lookup of h starts and returns its hash, so
// that a caller can start fetching the slots of many lookups at once.
func (x *idIndex) touch(h uint64) uint64 {
	s := x.shard(h)
	if len(s.slots) == 0 {
		return 0
	}
	return s.slots[h&uint64(len(s.slots)-1)].hash
}

// put stores seq for hash h, which must not be stored yet.
func (x *idIndex) put(h, seq uint64) {
	s := x.shard(h)
	// At most half full: linear probing's runs grow fast past that, and an
	// insert or a miss walks a whole run.
	if 2*(s.used+1) > len(s.slots) {
		s.grow()
	}
	s.insert(h, seq)
	s.used++
}

func (s *indexShard) insert(h, seq uint64) {
	mask := uint64(len(s.slots) - 1)
	i := h & mask
	for s.slots[i].hash != 0 {
		i = (i + 1) & mask
	}
	s.slots[i] = indexSlot{hash: h, seq: seq}
}

// grow doubles the shard and re-inserts its entries.
func (s *indexShard) grow() {
	old := s.slots
	s.slots = make([]indexSlot, max(2*len(old), minIndexSlots))
	for _, e := range old {
		if e.hash != 0 {
			s.insert(e.hash, e.seq)
		}
	}
}

// remove deletes hash h, if stored, and reports whether it was. The run
// after the freed slot is shifted back (backward-shift deletion), so that
// no tombstone is needed and every lookup still stops at an empty slot.
func (x *idIndex) remove(h uint64) bool {
	s := x.shard(h)
	if len(s.slots) == 0 {
		return false
	}
	mask := uint64(len(s.slots) - 1)
	i := h & mask
	for s.slots[i].hash != h {
		if s.slots[i].hash == 0 {
			return false
		}
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; s.slots[j].hash != 0; j = (j + 1) & mask {
		// The entry at j may fill the hole at i unless its home slot lies
		// cyclically in (i, j]: then a lookup from home never passes i.
		home := s.slots[j].hash & mask
		if (i < j && i < home && home <= j) || (i > j && (i < home || home <= j)) {
			continue
		}
		s.slots[i] = s.slots[j]
		i = j
	}
	s.slots[i] = indexSlot{}
	s.used--
	return true
}

// shrink gives back the memory of shards that removals left mostly empty:
// a shard under 1/8 full is rebuilt at about 1/4 full.
func (x *idIndex) shrink() {
	for i := range x.shards {
		s := &x.shards[i]
		if len(s.slots) <= minIndexSlots || 8*s.used >= len(s.slots) {
			continue
		}
		old := s.slots
		if s.used == 0 {
			s.slots = nil
			continue
		}
		size := minIndexSlots
		for size < 4*s.used {
			size *= 2
		}
		s.slots = make([]indexSlot, size)
		for _, e := range old {
			if e.hash != 0 {
				s.insert(e.hash, e.seq)
			}
		}
	}
}
