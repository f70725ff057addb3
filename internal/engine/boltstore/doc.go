// Package boltstore keeps the event store and the read models of
// --storage=disk in one bbolt file (go.etcd.io/bbolt, etcd's own store), so
// that appending a stream's events with their idempotency records, or
// applying events to a read model together with its checkpoint, is one
// transaction. Its writers are the processor and the projections, off the
// request path (the write a client waits for is the outbox log's, package
// outboxlog); DB.Update groups the writers waiting at the same moment into
// one transaction (package groupcommit). Why bbolt and not pebble, with
// both measured: hack/storebench/README.md.
//
// Layout of the file (top-level buckets):
//
//	streams/<stream>    events: sequence -> encoded message (package codec)
//	                    ids:    event id -> sequence (idempotent append)
//	                    keys:   key -> its version (kept by compaction)
//	                    bykey:  key length, key, version -> sequence
//	                            (ReadKey; keys and bykey come with the
//	                            stream's first keyed event)
//	meta                the global position counter, the layout version
//	readmodels/<name>   doc: key -> tagged value, or a bucket of list items
//	                    (8-byte index -> JSON); checkpoint: stream -> sequence
//	                    (names behind a 1-byte prefix: bbolt refuses empty keys)
package boltstore
