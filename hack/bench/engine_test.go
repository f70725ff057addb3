package bench

import (
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
)

// BenchmarkEngineThroughput runs the engine's side of the comparison; the
// workload is defined next to the engine so it tracks the engine's API.
func BenchmarkEngineThroughput(b *testing.B) { enginebench.Throughput(b) }
