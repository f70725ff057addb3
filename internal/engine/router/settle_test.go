package router_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/router"
)

// settled is one Settle call.
type settled struct {
	seq     uint64
	outcome router.Outcome
}

func TestSkippedAndDeadLetteredMessagesAreSettled(t *testing.T) {
	// The error each sequence's handling ends with.
	results := map[uint64]error{
		1: engine.ErrSkip,
		2: fmt.Errorf("dead-letter: %w", engine.ErrDeadLettered),
		3: nil,
		4: fmt.Errorf("filter: %w", engine.ErrSkip),
		5: nil,
	}
	want := []settled{{1, router.Skipped}, {2, router.DeadLettered}, {4, router.Skipped}}

	h := running(t, nil)
	var mu sync.Mutex
	var got []settled
	handler := engine.HandlerFunc(func(_ context.Context, msg engine.Message) ([]engine.Message, error) {
		return nil, results[msg.Sequence]
	})
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: handler, Start: fromStart,
		Settle: func(_ context.Context, msg engine.Message, o router.Outcome) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, settled{msg.Sequence, o})
			return nil
		}})
	h.emit(t, "a", len(results))
	enginetest.Eventually(t, "every event settled", func() bool { return h.stats(t, "p", "a").Delivered == 5 })

	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("Settle calls (sequence, outcome) = %v, want %v", got, want)
	}
}

func TestSkippedMessagesMoveOnWithoutSettle(t *testing.T) {
	h := running(t, nil)
	rec := newRecorder()
	handler := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		if msg.Sequence%2 == 1 {
			return nil, engine.ErrSkip
		}
		return rec.Handle(ctx, msg)
	})
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: handler, Start: fromStart})
	h.emit(t, "a", 4)
	enginetest.Eventually(t, "every event settled", func() bool { return h.stats(t, "p", "a").Delivered == 4 })
	checkSeqs(t, "stream a", rec.seqs("a"), []uint64{2, 4})
}

func TestUnsettledFailureIsRetriedNotSkipped(t *testing.T) {
	errBoom := errors.New("boom: database unavailable")
	h := running(t, nil)
	rec := newRecorder()
	var mu sync.Mutex
	var calls []engine.Message // every call, failed or not
	secondTry := make(chan struct{})
	resume := make(chan struct{})
	resumeOnce := sync.OnceFunc(func() { close(resume) })
	defer resumeOnce() // a failed test must not leave the handler blocked
	handler := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		mu.Lock()
		calls = append(calls, msg)
		tries := 0
		for _, c := range calls {
			if c.Sequence == msg.Sequence {
				tries++
			}
		}
		mu.Unlock()
		if msg.Sequence != 2 || tries > 2 {
			return rec.Handle(ctx, msg)
		}
		if tries == 2 {
			// Stalled: hold here so the test can look at Stats.
			close(secondTry)
			select {
			case <-resume:
			case <-ctx.Done():
			}
		}
		return nil, errBoom
	})
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: handler, Start: fromStart})
	// Event 1 first, so the failing event 2 arrives live, not in catch-up.
	h.emit(t, "a", 1)
	enginetest.Eventually(t, "event 1", func() bool { return rec.count("a") == 1 })
	h.emit(t, "a", 2)

	receive(t, "the second try of event 2", secondTry)
	st := h.stats(t, "p", "a")
	if !strings.Contains(st.Err, errBoom.Error()) || st.Delivered != 1 {
		t.Errorf("stats while event 2 fails = %+v, want Delivered 1 and Err containing %q", st, errBoom)
	}
	resumeOnce()

	enginetest.Eventually(t, "every event", func() bool { return rec.count("a") == 3 })
	checkSeqs(t, "stream a", rec.seqs("a"), seqRange(1, 3))
	mu.Lock()
	seqs := make([]uint64, 0, len(calls))
	for _, c := range calls {
		seqs = append(seqs, c.Sequence)
	}
	ids := []string{calls[1].ID, calls[2].ID, calls[3].ID}
	mu.Unlock()
	if want := []uint64{1, 2, 2, 2, 3}; !slices.Equal(seqs, want) {
		t.Errorf("handler calls by sequence = %v, want %v", seqs, want)
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("ids of the three tries of event 2 = %q, want one id redelivered", ids)
	}
	enginetest.Eventually(t, "the error to clear", func() bool {
		st := h.stats(t, "p", "a")
		return st.Err == "" && st.Delivered == 3
	})
}

func TestFailedSettleIsRetried(t *testing.T) {
	h := running(t, nil)
	var mu sync.Mutex
	var got []settled
	failures := 1
	handler := engine.HandlerFunc(func(context.Context, engine.Message) ([]engine.Message, error) {
		return nil, engine.ErrSkip
	})
	h.add(t, router.Route{Name: "p", Streams: []string{"a"}, Handler: handler, Start: fromStart,
		Settle: func(_ context.Context, msg engine.Message, o router.Outcome) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, settled{msg.Sequence, o})
			if failures > 0 {
				failures--
				return errors.New("checkpoint not saved")
			}
			return nil
		}})
	h.emit(t, "a", 2)
	enginetest.Eventually(t, "both events settled", func() bool { return h.stats(t, "p", "a").Delivered == 2 })

	mu.Lock()
	defer mu.Unlock()
	if want := []settled{{1, router.Skipped}, {1, router.Skipped}, {2, router.Skipped}}; !slices.Equal(got, want) {
		t.Errorf("Settle calls (sequence, outcome) = %v, want %v", got, want)
	}
}
