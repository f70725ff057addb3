// Package diskstore is the durable backend of --storage=disk: the event
// store, the outbox and the read models with their checkpoints, all in one
// bbolt file (go.etcd.io/bbolt, etcd's own store), so that moving an event
// from the outbox to the store, or applying events to a read model together
// with its checkpoint, is one transaction.
//
// Every write goes through DB.Update, which groups the writers waiting at
// the same moment into one transaction and so one fsync (group commit): a
// caller returns only once the commit holding its write is on disk. The
// figures behind the choice of bbolt are in hack/storebench/README.md.
//
// Layout (top-level buckets):
//
//	outbox              position (8-byte big-endian) -> encoded message
//	streams/<stream>    events: sequence -> encoded message
//	                    ids:    event id -> sequence (idempotent append)
//	meta                the global position counter, the layout version
//	readmodels/<name>   doc: key -> tagged value, or a bucket of list items
//	                    (8-byte index -> JSON); checkpoint: stream -> sequence
//	                    (names behind a 1-byte prefix: bbolt refuses empty keys)
package diskstore
