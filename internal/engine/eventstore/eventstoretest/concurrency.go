package eventstoretest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

var concurrencyBehaviours = []behaviour{
	{"ConcurrentAppendersGetContiguousSequencesAndUniquePositions", testConcurrentAppendersGetContiguousSequencesAndUniquePositions},
	{"ConcurrentAppendsExpectingTheSameVersionLetOneWin", testConcurrentAppendsExpectingTheSameVersionLetOneWin},
}

// Small enough for -race on two shared cores, large enough to interleave.
const (
	writers          = 8
	appendsPerWriter = 50
)

func testConcurrentAppendersGetContiguousSequencesAndUniquePositions(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	results := make([][]engine.Message, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range appendsPerWriter {
				// Alternate single events and pairs so batches interleave too.
				batch := []engine.Message{event(fmt.Sprintf("w%d-%d", w, i))}
				if i%2 == 1 {
					batch = append(batch, event(fmt.Sprintf("w%d-%d-pair", w, i)))
				}
				res, err := s.Append(ctx, ordersStream, eventstore.Any, batch)
				if err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
				results[w] = append(results[w], res.Events...)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	total := writers * (appendsPerWriter + appendsPerWriter/2)
	bySequence := make(map[uint64]string, total)
	byPosition := make(map[uint64]string, total)
	for w, evs := range results {
		for i, m := range evs {
			if other, dup := bySequence[m.Sequence]; dup {
				t.Errorf("sequence %d given to both %q and %q", m.Sequence, other, m.ID)
			}
			if other, dup := byPosition[m.Position]; dup && positioned(s) {
				t.Errorf("position %d given to both %q and %q", m.Position, other, m.ID)
			}
			bySequence[m.Sequence], byPosition[m.Position] = m.ID, m.ID
			if i > 0 && m.Sequence <= evs[i-1].Sequence {
				t.Errorf("writer %d: event %q has sequence %d after %d, want it greater", w, m.ID, m.Sequence, evs[i-1].Sequence)
			}
		}
	}
	read := mustRead(t, s, ordersStream, 0, total+1)
	checkSequences(t, "read", read, 1, total)
	for _, m := range read {
		if bySequence[m.Sequence] != m.ID {
			t.Errorf("sequence %d: read %q, want %q as appended", m.Sequence, m.ID, bySequence[m.Sequence])
		}
	}
}

func testConcurrentAppendsExpectingTheSameVersionLetOneWin(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			_, errs[w] = s.Append(ctx, ordersStream, eventstore.NoStream, []engine.Message{event(fmt.Sprintf("w%d", w))})
		})
	}
	wg.Wait()
	wins := 0
	for w, err := range errs {
		var conflict *eventstore.ConflictError
		switch {
		case err == nil:
			wins++
		case errors.As(err, &conflict) && conflict.Actual == 1:
		default:
			t.Errorf("writer %d: got error %v, want nil or a conflict with actual 1", w, err)
		}
	}
	if wins != 1 {
		t.Errorf("appends that won: got %d, want 1", wins)
	}
	if v := mustVersion(t, s, ordersStream); v != 1 {
		t.Errorf("Version: got %d, want 1", v)
	}
}
