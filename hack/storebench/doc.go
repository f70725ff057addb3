// Package storebench measures the two candidate embedded stores for
// --storage=disk (issue 6), go.etcd.io/bbolt and github.com/cockroachdb/pebble,
// on the outbox's ingest workload: one ~200-byte JSON event under a
// monotonically increasing 8-byte big-endian key, durable (fsynced) before the
// writer is answered. It also holds GroupCommitter, the hand-written group
// commit over bbolt that the disk backend would ship if bbolt is chosen.
//
// This is its own Go module so the product's go.mod takes neither store until
// one is chosen. See README.md for the command and the figures.
package storebench
