package core

import (
	"context"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// countingEnqueuer puts what handlers return, dead letters and redriven
// events in the outbox, and counts them in their streams' rates, as ingest
// counts what it accepts.
type countingEnqueuer struct{ e *Engine }

func (c countingEnqueuer) Enqueue(ctx context.Context, msgs []engine.Message) error {
	if err := c.e.cfg.Outbox.Enqueue(ctx, msgs); err != nil {
		return err
	}
	now := time.Now()
	streams := *c.e.streams.Load()
	for i := 0; i < len(msgs); {
		j := i + 1
		for j < len(msgs) && msgs[j].Stream == msgs[i].Stream {
			j++
		}
		// A dead-letter stream no Stream object declares has no rate.
		if s, ok := streams[msgs[i].Stream]; ok {
			s.appended.Add(now, j-i)
		}
		i = j
	}
	return nil
}

// countAcceptedAt counts the events of an append stamped now: the new ones.
// An event whose id the stream held comes back as first stored, with the
// time it was accepted then.
func countAcceptedAt(stored []engine.Message, now time.Time) int {
	n := 0
	for i := range stored {
		if stored[i].Time.Equal(now) {
			n++
		}
	}
	return n
}
