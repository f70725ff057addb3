// Package storebench measures the two embedded stores considered for
// --storage=disk, go.etcd.io/bbolt and github.com/cockroachdb/pebble, on the
// outbox's ingest workload: one ~200-byte JSON event under a monotonically
// increasing 8-byte big-endian key, durable (fsynced) before the writer is
// answered. It also holds GroupCommitter, a hand-written group commit over
// bbolt (the bbolt/group runs).
//
// This is its own Go module so the product's go.mod does not take pebble.
// See README.md for the command, the figures and which store was chosen.
package storebench
