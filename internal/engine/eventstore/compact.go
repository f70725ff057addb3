package eventstore

import "context"

// Compactor is implemented by a Store that can drop a stream's oldest
// events, which is how stream retention is enforced. Both the memory store
// and the disk store implement it.
//
// Compaction never changes what a stream's sequences mean: Version stays
// what it was, the next append gets the sequence it would have had, and a
// sequence is never reused. The stream's last event is always kept, so
// Version can still be read from the store. Read and Subscribe after a
// compaction start at the first retained event: a Read or Subscribe whose
// after is below it returns events from it on, with no error, so a reader
// cannot tell a compacted prefix from the stream's start except by the
// first sequence it gets (First says it in advance).
//
// Keys likewise: KeyVersion stays what it was and the key's next event gets
// the version it would have had; ReadKey starts at the key's first retained
// event, and a key whose events are all compacted reads as empty.
//
// Idempotency records go with their events: the ID of a compacted event is
// forgotten (Lookup no longer finds it), so Append's idempotency by event
// ID holds within the retained window only (an event re-sent with the ID of
// a compacted one is appended as new). Keeping them would make the ID index grow without bound, which
// is what retention is there to prevent.
type Compactor interface {
	// Compact removes the events of stream with a sequence below before,
	// except the stream's last event, and reports how many it removed.
	// Compacting what is already gone removes nothing (Compact is
	// idempotent); an unknown stream has nothing to remove. Appends and
	// reads may run concurrently; nothing appended is lost.
	Compact(ctx context.Context, stream string, before uint64) (removed int, err error)
	// First returns the sequence of the stream's first retained event, 0
	// for a stream without events.
	First(ctx context.Context, stream string) (uint64, error)
}
