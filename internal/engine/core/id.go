package core

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"time"
)

// idLen is the length of a UUID's text form.
const idLen = 36

// idBatch is a run of new UUIDv7 strings carved from one string, so that a
// request's ids cost one allocation, not two per id.
type idBatch string

// newIDs returns n UUIDv7s for time now: unique (74 random bits each) and
// ordered by time to the millisecond, which keeps the ids of one stream close
// together in indexes. google/uuid's NewV7 would take a process-wide lock and
// read the random source once per id; 64 concurrent ingest calls contend on
// the first, and the second costs more than the rest of ingest.
func newIDs(now time.Time, n int) idBatch {
	ms := uint64(now.UnixMilli())
	var text strings.Builder
	text.Grow(idLen * n)
	for range n {
		var u [16]byte
		// math/rand/v2's generator is ChaCha8, seeded by the OS for each
		// thread: unique enough for ids (which clients may choose anyway,
		// so nothing relies on them being unguessable), and several times
		// cheaper than crypto/rand.
		binary.BigEndian.PutUint64(u[0:8], ms<<16|rand.Uint64()&0xffff)
		binary.BigEndian.PutUint64(u[8:16], rand.Uint64())
		u[6] = u[6]&0x0f | 0x70 // version 7
		u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
		var buf [idLen]byte
		text.Write(appendUUID(buf[:0], u))
	}
	return idBatch(text.String())
}

// next returns the first id and the rest.
func (b idBatch) next() (string, idBatch) {
	return string(b[:idLen]), b[idLen:]
}

// appendUUID appends u in its canonical text form, 8-4-4-4-12 lowercase hex.
func appendUUID(dst []byte, u [16]byte) []byte {
	dst = hex.AppendEncode(dst, u[0:4])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, u[4:6])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, u[6:8])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, u[8:10])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, u[10:16])
}
