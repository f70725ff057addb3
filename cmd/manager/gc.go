package main

import (
	"os"
	"runtime/debug"
)

// diskGCPercent is the garbage collector's GOGC with --storage=disk. The
// data file is memory-mapped, not heap, and the outbox log keeps at most
// its capacity of entries in memory, so the live heap stays at a few tens
// of MB; at the default GOGC of 100 the collector then runs every few MB
// allocated, many times a second under load, and costs the ingest path a
// large share of its CPU. Four times the live heap as headroom keeps the
// heap in the low hundreds of MB, within the Deployment's memory limit
// (docs/performance.md).
const diskGCPercent = 400

// tuneGC sets diskGCPercent for disk storage unless GOGC is set: an
// operator's choice stands.
func tuneGC(storage string) {
	if storage != storageDisk || os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(diskGCPercent)
}
