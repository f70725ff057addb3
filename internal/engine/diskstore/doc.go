// Package diskstore is the durable backend of --storage=disk: the outbox
// as an append-only log of segment files (dir/outbox), and the event store
// and the read models with their checkpoints in one bbolt file
// (go.etcd.io/bbolt, etcd's own store), so that appending a stream's events
// with their idempotency records, or applying events to a read model
// together with its checkpoint, is one transaction.
//
// The outbox is apart because it is the write a client waits for: a bbolt
// commit is two fdatasyncs and one writer at a time, an append to the log
// one write and one fdatasync, with the next group gathering while the
// last one syncs (LogOutbox). The event store and read models are written
// by the processor and projections, off the request path, through
// DB.Update, which also groups the writers waiting at the same moment into
// one transaction. The figures behind bbolt are in
// hack/storebench/README.md, those of the log in docs/performance.md.
//
// Layout of the bbolt file (top-level buckets):
//
//	streams/<stream>    events: sequence -> encoded message
//	                    ids:    event id -> sequence (idempotent append)
//	meta                the global position counter, the layout version
//	readmodels/<name>   doc: key -> tagged value, or a bucket of list items
//	                    (8-byte index -> JSON); checkpoint: stream -> sequence
//	                    (names behind a 1-byte prefix: bbolt refuses empty keys)
//
// The log's format is in outboxlog_segment.go.
package diskstore
