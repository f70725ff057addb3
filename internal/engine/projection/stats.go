package projection

import "github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"

// Stats is a snapshot of a projection's progress, for status and metrics.
type Stats struct {
	// Processed counts events applied to the read model or skipped.
	Processed uint64
	// DeadLettered counts events that failed for good.
	DeadLettered uint64
	// Checkpoint is the last sequence applied or settled, per stream.
	Checkpoint readmodel.Checkpoint
}

// Lag is how many events are stored and not yet processed, summed over the
// streams in versions (each stream's last sequence). A checkpoint ahead of
// a version, as when the version was read earlier, counts as no lag.
func (s Stats) Lag(versions map[string]uint64) uint64 {
	var lag uint64
	for stream, v := range versions {
		if cp := s.Checkpoint[stream]; v > cp {
			lag += v - cp
		}
	}
	return lag
}
