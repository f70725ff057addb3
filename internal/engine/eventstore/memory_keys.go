package eventstore

import (
	"slices"
	"strings"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// keyTable is one stream's keys. A record names its key by index into
// list, so records stay free of pointers; index 0 stands for no key.
// Entries are never removed: a key's version outlives its events.
type keyTable struct {
	index map[string]uint32
	list  []streamKey
}

// streamKey is one key of a stream.
type streamKey struct {
	name string
	// version is how many events were ever appended to the key.
	version uint64
	// seqs[head:] are the sequences of the key's retained events, oldest
	// first: their versions run up to version with no gap, since
	// compaction drops a stream's oldest events and so a key's oldest.
	// seqs[:head] were compacted; trim gives their memory back.
	seqs []uint64
	head int
}

// retained returns the sequences of the key's retained events.
func (k *streamKey) retained() []uint64 { return k.seqs[k.head:] }

// get returns the key's entry, nil when the stream has no event of it.
func (t *keyTable) get(key string) *streamKey {
	i, ok := t.index[key]
	if !ok {
		return nil
	}
	return &t.list[i]
}

// add records that the event with sequence seq is version of key and
// returns the key's index (0 for no key).
func (t *keyTable) add(key string, version, seq uint64) uint32 {
	if key == "" {
		return 0
	}
	i, ok := t.index[key]
	if !ok {
		if t.index == nil {
			t.index = make(map[string]uint32)
			t.list = []streamKey{{}}
		}
		key = strings.Clone(key) // the caller's string may share a larger buffer
		i = uint32(len(t.list))
		t.list = append(t.list, streamKey{name: key})
		t.index[key] = i
	}
	k := &t.list[i]
	k.version = version
	k.seqs = append(k.seqs, seq)
	return i
}

// name returns the key with index i.
func (t *keyTable) name(i uint32) string {
	if i == 0 {
		return ""
	}
	return t.list[i].name
}

// dropOldest forgets the oldest retained event of key i, which compaction
// removes.
func (t *keyTable) dropOldest(i uint32) {
	t.list[i].head++
}

// trim gives back the memory of the keys' compacted sequences once they
// are half of a key's: a key left with none holds no array, another gets
// an array of its retained ones. Copying only then costs each retained
// sequence O(1) copies over its life.
func (t *keyTable) trim(keys map[uint32]struct{}) {
	for i := range keys {
		k := &t.list[i]
		switch {
		case k.head == len(k.seqs):
			k.seqs, k.head = nil, 0
		case 2*k.head >= len(k.seqs):
			k.seqs, k.head = slices.Clone(k.retained()), 0
		}
	}
}

// keyVersion returns the key's version, 0 for a key without events or a
// nil log (an unknown stream).
func (l *streamLog) keyVersion(key string) uint64 {
	if l == nil {
		return 0
	}
	if k := l.keys.get(key); k != nil {
		return k.version
	}
	return 0
}

// numberKeys returns the versions that events, about to be appended, get
// (versions[i] for events[i]; 0 for unkeyed events and duplicates), or a
// *KeyConflictError. It changes nothing: Append numbers every new event
// before it stores the first. l may be nil (a new stream).
func (l *streamLog) numberKeys(stream string, events []engine.Message) ([]uint64, error) {
	kv := NewKeyVersions(stream, func(key string) (uint64, error) { return l.keyVersion(key), nil })
	versions := make([]uint64, len(events))
	var seen map[string]struct{}
	if len(events) > batchSeenThreshold {
		seen = make(map[string]struct{}, len(events))
	}
	for i := range events {
		e := &events[i]
		if seen != nil {
			if _, dup := seen[e.ID]; dup {
				continue
			}
			seen[e.ID] = struct{}{}
		} else if slices.ContainsFunc(events[:i], func(o engine.Message) bool { return o.ID == e.ID }) {
			continue
		}
		if _, stored := l.lookup(e.ID); stored {
			continue
		}
		v, err := kv.Next(e)
		if err != nil {
			return nil, err
		}
		versions[i] = v
	}
	return versions, nil
}

// batchSeenThreshold is the batch size above which numberKeys finds
// repeated IDs with a map rather than by scanning the events before.
const batchSeenThreshold = 16

// readKey returns up to limit retained events of key with version > after.
func (l *streamLog) readKey(stream, key string, strs *stringTable, after uint64, limit int) []engine.Message {
	if l == nil {
		return nil
	}
	k := l.keys.get(key)
	if k == nil || after >= k.version || len(k.retained()) == 0 {
		return nil
	}
	// Compacted events read as if the key started after them.
	dropped := k.version - uint64(len(k.retained()))
	after = max(after, dropped)
	seqs := k.retained()[after-dropped:]
	n := min(len(seqs), limit)
	return l.messages(stream, strs, n, func(i int) uint64 { return seqs[i] })
}
