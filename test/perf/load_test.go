package perf

import (
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/test/loadgen"
)

// runLoad runs spec in a child process (this test binary again), so that
// the clients share neither the benchmark's scheduler nor the manager's.
func runLoad(b *testing.B, spec loadgen.Spec) loadgen.Result {
	b.Helper()
	res, err := loadgen.RunInChild(spec, "TestLoadGeneratorProcess")
	if err != nil {
		b.Fatal(err)
	}
	if res.Err != "" {
		b.Fatal(res.Err)
	}
	return res
}

// TestLoadGeneratorProcess is the child of runLoad; on its own it does nothing.
func TestLoadGeneratorProcess(t *testing.T) { loadgen.ServeChild(t) }
