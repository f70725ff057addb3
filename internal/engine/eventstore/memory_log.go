package eventstore

import (
	"hash/maphash"
	"strings"
	"time"
	"unsafe"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// chunkSize is how many records one chunk of a stream's log holds. The log
// grows by whole chunks, so an append never copies more than one chunk.
const chunkSize = 1024

// firstChunkCap is the first chunk's starting capacity: most streams are
// small and should not cost a whole chunk.
const firstChunkCap = 8

// Byte blocks hold the variable-length parts of records. They start small for
// small streams and double up to maxBlockSize, so one block is never copied
// and a full block wastes at most one event's bytes.
const (
	minBlockSize = 512
	maxBlockSize = 256 << 10
)

// record is the compact form of one stored event: 64 bytes, plus its bytes
// in a block. The stream and sequence are implicit in where it lives, Name
// and ContentType are indexes into the store's string table, key into the
// stream's key table, the time is Unix nanoseconds, and the payload,
// correlation id, causation id, id and headers (encoded, see
// memory_headers.go) lie one after the other at off in block. A record
// holds no pointer, so the garbage collector never scans the chunks that
// hold them, however many events the store keeps.
type record struct {
	position    uint64
	unixNano    int64
	version     uint64
	block       uint32
	off         uint32
	payloadLen  uint32
	corrLen     uint32
	causLen     uint32
	idLen       uint32
	headersLen  uint32
	name        uint32
	contentType uint32
	key         uint32
}

// size is how many block bytes the record uses.
func (r *record) size() int {
	return int(r.payloadLen + r.corrLen + r.causLen + r.idLen + r.headersLen)
}

// streamLog is one stream's events. Records are never changed once pushed,
// only the chunk slices that hold them grow. Compaction (memory_compact.go)
// drops the oldest events: whole chunks and blocks go, a partly compacted
// first chunk keeps its records but they are never read again.
type streamLog struct {
	// chunks are full (chunkSize records) except the last one. The first
	// one holds sequence chunkBase()*chunkSize+1.
	chunks [][]record
	// dropped is how many of the oldest events compaction removed: the
	// first retained sequence is dropped+1.
	dropped uint64
	// ids maps the hash of every stored event ID to its sequence; a hit is
	// confirmed against the record's ID.
	ids  idIndex
	seed maphash.Seed
	// hashes is prefetch's buffer; sink keeps its loads from being
	// optimised away.
	hashes []uint64
	sink   uint64
	// clashes holds the IDs whose hash an earlier ID of the stream has
	// already taken in ids: almost always nil.
	clashes map[string]uint64
	// blocks hold the records' bytes; block number b is blocks[b-blockBase]
	// (compaction drops leading blocks), the block numbered current is
	// being filled (its len is what is used) and the others are full, hold
	// one large event, or are nil once compaction freed them.
	blocks    [][]byte
	current   uint32
	blockBase uint32
	// refs counts, per block of blocks, the retained records using it.
	refs []uint32
	// keys are the stream's keys with their versions and retained events.
	keys keyTable
	// name and contentType remember the last interned strings: a stream's
	// events mostly share them.
	name, contentType struct {
		s string
		i uint32
	}
}

func newStreamLog(seed maphash.Seed) *streamLog {
	return &streamLog{seed: seed}
}

// version is the last sequence; a nil log is an unknown stream.
func (l *streamLog) version() uint64 {
	if l == nil || len(l.chunks) == 0 {
		return 0
	}
	n := len(l.chunks)
	return (l.chunkBase()+uint64(n-1))*chunkSize + uint64(len(l.chunks[n-1]))
}

// chunkBase is how many leading chunks compaction dropped: those whose every
// sequence is at most dropped.
func (l *streamLog) chunkBase() uint64 {
	return l.dropped / chunkSize
}

// first is the first retained sequence, 0 for a stream without events.
func (l *streamLog) first() uint64 {
	if l.version() == 0 {
		return 0
	}
	return l.dropped + 1
}

// lookup returns the sequence of the event with id, if the stream holds it.
func (l *streamLog) lookup(id string) (uint64, bool) {
	if l == nil {
		return 0, false
	}
	seq, ok, _ := l.find(id, l.hash(id))
	return seq, ok
}

// hash is the index's hash of id.
func (l *streamLog) hash(id string) uint64 {
	return idHash(maphash.String(l.seed, id))
}

// prefetch returns the index hashes of events' IDs, in a buffer reused by
// the next call, and starts fetching the index slots their lookups will
// read, all at once; see idIndex.
func (l *streamLog) prefetch(events []engine.Message) []uint64 {
	if cap(l.hashes) < len(events) {
		l.hashes = make([]uint64, len(events))
	}
	hashes := l.hashes[:len(events)]
	var sink uint64
	for i := range events {
		hashes[i] = l.hash(events[i].ID)
		sink ^= l.ids.touch(hashes[i])
	}
	l.sink = sink
	return hashes
}

// find looks id up by its hash h; taken says whether h is in ids (for this
// id or another), which is what index needs to know.
func (l *streamLog) find(id string, h uint64) (seq uint64, ok, taken bool) {
	seq, taken = l.ids.get(h)
	if taken && l.id(l.at(seq)) == id {
		return seq, true, true
	}
	if l.clashes != nil {
		seq, ok = l.clashes[id]
		return seq, ok, taken
	}
	return 0, false, taken
}

// holdsAny reports whether any of events is stored when want is true, or
// whether any is not stored when want is false.
func (l *streamLog) holdsAny(events []engine.Message, want bool) bool {
	for _, e := range events {
		if _, ok := l.lookup(e.ID); ok == want {
			return true
		}
	}
	return false
}

// index records that id, whose hash is h, has sequence seq; taken is what
// find said of h.
func (l *streamLog) index(id string, h uint64, taken bool, seq uint64) {
	if !taken {
		l.ids.put(h, seq)
		return
	}
	if l.clashes == nil {
		l.clashes = make(map[string]uint64)
	}
	l.clashes[id] = seq
}

// pushNew stores *e, whose ID hashes to h, as push does unless the stream
// holds its ID already; either way it sets *dst to the event as stored and
// reports whether it was new. Pointers spare a copy of each message.
func (l *streamLog) pushNew(dst, e *engine.Message, h, position, version uint64, now time.Time, strs *stringTable, stream string) bool {
	seq, ok, taken := l.find(e.ID, h)
	if ok {
		*dst = l.messages(stream, strs, 1, func(int) uint64 { return seq })[0]
		return false
	}
	l.push(dst, e, position, version, now, strs)
	l.index(dst.ID, h, taken, dst.Sequence)
	dst.Stream = stream
	return true
}

// at returns the record with sequence seq, which must be in first..version.
func (l *streamLog) at(seq uint64) *record {
	i := seq - 1 - l.chunkBase()*chunkSize
	return &l.chunks[i/chunkSize][i%chunkSize]
}

// push stores *e as the next sequence with the given global position and
// key version (0 for an unkeyed event) and sets *dst to it as stored; the
// caller indexes its ID. *dst shares e's Headers and Payload; the store
// keeps its own copies.
func (l *streamLog) push(dst, e *engine.Message, position, version uint64, now time.Time, strs *stringTable) {
	hdrLen := headersSize(e.Headers)
	n := len(e.Payload) + len(e.CorrelationID) + len(e.CausationID) + len(e.ID) + hdrLen
	block, off, data := l.alloc(n)
	at := copy(data, e.Payload)
	at += copy(data[at:], e.CorrelationID)
	at += copy(data[at:], e.CausationID)
	at += copy(data[at:], e.ID)
	putHeaders(data[at:], e.Headers)
	t := e.Time
	if t.IsZero() {
		t = now
	}
	r := record{
		position:    position,
		unixNano:    t.UnixNano(),
		block:       block,
		off:         off,
		payloadLen:  uint32(len(e.Payload)),
		corrLen:     uint32(len(e.CorrelationID)),
		causLen:     uint32(len(e.CausationID)),
		idLen:       uint32(len(e.ID)),
		headersLen:  uint32(hdrLen),
		name:        l.internName(strs, e.Name),
		contentType: l.internContentType(strs, e.ContentType),
		version:     version,
	}
	seq := l.version() + 1
	r.key = l.keys.add(e.Key, version, seq)
	l.appendRecord(r)
	*dst = *e
	if len(e.Headers) == 0 {
		dst.Headers = nil
	}
	dst.ID = l.id(&r) // the store's copy: the index keys on it
	dst.Sequence, dst.Position, dst.Time, dst.Value = seq, position, time.Unix(0, r.unixNano).UTC(), nil
	dst.Key, dst.Version = l.keys.name(r.key), version
	if len(e.Payload) == 0 {
		dst.Payload = nil
	}
}

// bytes returns the record's bytes: payload, correlation id, causation id,
// id, headers.
func (l *streamLog) bytes(r *record) []byte {
	return l.blocks[r.block-l.blockBase][r.off : int(r.off)+r.size()]
}

// id returns the record's ID as a view of its block: block bytes never
// change once written, which is what makes the view safe, and it costs no
// copy.
func (l *streamLog) id(r *record) string {
	if r.idLen == 0 {
		return ""
	}
	start := r.payloadLen + r.corrLen + r.causLen
	b := l.bytes(r)[start : start+r.idLen]
	return unsafe.String(&b[0], len(b))
}

func (l *streamLog) internName(strs *stringTable, s string) uint32 {
	if s != l.name.s || l.name.i == 0 {
		l.name.i = strs.intern(s)
		l.name.s = strs.lookup(l.name.i) // the table's copy, not the caller's
	}
	return l.name.i
}

func (l *streamLog) internContentType(strs *stringTable, s string) uint32 {
	if s != l.contentType.s || l.contentType.i == 0 {
		l.contentType.i = strs.intern(s)
		l.contentType.s = strs.lookup(l.contentType.i)
	}
	return l.contentType.i
}

// appendRecord adds r to the last chunk, growing that chunk up to chunkSize
// and then starting a new one.
func (l *streamLog) appendRecord(r record) {
	n := len(l.chunks)
	if n == 0 || len(l.chunks[n-1]) == chunkSize {
		c := chunkSize
		if n == 0 {
			c = firstChunkCap
		}
		l.chunks = append(l.chunks, make([]record, 0, c))
		n++
	}
	last := l.chunks[n-1]
	if len(last) == cap(last) {
		grown := make([]record, len(last), min(2*cap(last), chunkSize))
		copy(grown, last)
		last = grown
	}
	l.chunks[n-1] = append(last, r)
}

// alloc returns n bytes for one record, carved from the current block, with
// the block's index and the bytes' offset in it. The slice's capacity is its
// length so it cannot reach into a neighbour.
// Each call counts one more record using the block it returns.
func (l *streamLog) alloc(n int) (uint32, uint32, []byte) {
	if len(l.blocks) == 0 {
		l.blocks = append(l.blocks, make([]byte, 0, minBlockSize))
		l.refs = append(l.refs, 0)
	}
	cur := l.blocks[l.current-l.blockBase]
	if cap(cur)-len(cur) < n {
		size := min(max(2*cap(cur), minBlockSize), maxBlockSize)
		if n > size {
			// Too big to share a block: it gets one of its own.
			l.blocks = append(l.blocks, make([]byte, n))
			l.refs = append(l.refs, 1)
			return l.blockBase + uint32(len(l.blocks)-1), 0, l.blocks[len(l.blocks)-1]
		}
		cur = make([]byte, 0, size)
		l.blocks = append(l.blocks, cur)
		l.refs = append(l.refs, 0)
		l.current = l.blockBase + uint32(len(l.blocks)-1)
	}
	start := len(cur)
	cur = cur[:start+n]
	l.blocks[l.current-l.blockBase] = cur
	l.refs[l.current-l.blockBase]++
	return l.current, uint32(start), cur[start : start+n : start+n]
}

// stringTable interns the few distinct event names and content types, so a
// record holds a 4-byte index instead of a string. Index 0 is "".
type stringTable struct {
	index map[string]uint32
	list  []string
}

func (t *stringTable) intern(s string) uint32 {
	if s == "" {
		return 0
	}
	if i, ok := t.index[s]; ok {
		return i
	}
	if t.index == nil {
		t.index = make(map[string]uint32)
		t.list = []string{""}
	}
	s = strings.Clone(s)
	i := uint32(len(t.list))
	t.list = append(t.list, s)
	t.index[s] = i
	return i
}

func (t *stringTable) lookup(i uint32) string {
	if i == 0 {
		return ""
	}
	return t.list[i]
}

// messages rebuilds n events of stream, the i-th having sequence seqAt(i),
// as copies the caller owns: all payloads share one new buffer (each capped at
// its own length) and all correlation and causation ids one new string, so a
// batch costs a few allocations rather than a few per event. IDs are views of
// the store's blocks, which never change.
func (l *streamLog) messages(stream string, strs *stringTable, n int, seqAt func(int) uint64) []engine.Message {
	payloadBytes, stringBytes := 0, 0
	for i := range n {
		r := l.at(seqAt(i))
		payloadBytes += int(r.payloadLen)
		stringBytes += int(r.corrLen + r.causLen)
	}
	payloads := make([]byte, 0, payloadBytes)
	var sb strings.Builder
	sb.Grow(stringBytes)
	for i := range n {
		r := l.at(seqAt(i))
		b := l.bytes(r)
		payloads = append(payloads, b[:r.payloadLen]...)
		sb.Write(b[r.payloadLen : r.payloadLen+r.corrLen+r.causLen])
	}
	text := sb.String()

	out := make([]engine.Message, n)
	pOff, sOff := 0, 0
	for i := range n {
		seq := seqAt(i)
		r := l.at(seq)
		pLen := int(r.payloadLen)
		m := engine.Message{
			ID:            l.id(r),
			Name:          strs.lookup(r.name),
			Stream:        stream,
			Sequence:      seq,
			Position:      r.position,
			Time:          time.Unix(0, r.unixNano).UTC(),
			CorrelationID: text[sOff : sOff+int(r.corrLen)],
			CausationID:   text[sOff+int(r.corrLen) : sOff+int(r.corrLen+r.causLen)],
			ContentType:   strs.lookup(r.contentType),
			Key:           l.keys.name(r.key),
			Version:       r.version,
		}
		if pLen > 0 {
			m.Payload = payloads[pOff : pOff+pLen : pOff+pLen]
		}
		if r.headersLen > 0 {
			m.Headers = readHeaders(l.bytes(r)[r.size()-int(r.headersLen):])
		}
		pOff += pLen
		sOff += int(r.corrLen + r.causLen)
		out[i] = m
	}
	return out
}
