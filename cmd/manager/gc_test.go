package main

import (
	"runtime/debug"
	"testing"
)

// gcPercentAfter runs tuneGC for storage with GOGC set to gogc ("" for
// unset) and returns the GC percent it leaves, restoring the process's.
func gcPercentAfter(t *testing.T, storage, gogc string) int {
	t.Helper()
	t.Setenv("GOGC", gogc)
	const sentinel = 123
	saved := debug.SetGCPercent(sentinel)
	defer debug.SetGCPercent(saved)
	tuneGC(storage)
	return debug.SetGCPercent(sentinel)
}

func TestDiskStorageCollectsGarbageLessOften(t *testing.T) {
	if got := gcPercentAfter(t, storageDisk, ""); got != diskGCPercent {
		t.Fatalf("GC percent with --storage=disk = %d, want %d", got, diskGCPercent)
	}
}

func TestMemoryStorageAndASetGOGCKeepTheirGCPercent(t *testing.T) {
	if got := gcPercentAfter(t, storageMemory, ""); got != 123 {
		t.Fatalf("GC percent with --storage=memory = %d, want it untouched (123)", got)
	}
	if got := gcPercentAfter(t, storageDisk, "50"); got != 123 {
		t.Fatalf("GC percent with --storage=disk and GOGC=50 = %d, want it untouched (123)", got)
	}
}
