package middleware

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
)

// sleepRecorder stands in for the backoff wait: it records each duration and
// returns at once.
type sleepRecorder struct{ waits []time.Duration }

func (s *sleepRecorder) sleep(_ context.Context, d time.Duration) error {
	s.waits = append(s.waits, d)
	return nil
}

// testRetry builds Retry with instant, recorded sleeps and a fixed random
// value (0.5 means no jitter).
func testRetry(t *testing.T, cfg RetryConfig, random float64) (engine.Middleware, *sleepRecorder) {
	t.Helper()
	s := &sleepRecorder{}
	cfg.sleep = s.sleep
	cfg.random = func() float64 { return random }
	mw, err := Retry(cfg)
	if err != nil {
		t.Fatalf("Retry(%+v): %v", cfg, err)
	}
	return mw, s
}

func TestRetryConfigDefaults(t *testing.T) {
	var cfg RetryConfig
	cfg.setDefaults()
	got := [5]any{cfg.MaxAttempts, cfg.InitialBackoff, cfg.MaxBackoff, cfg.Multiplier, cfg.Jitter}
	want := [5]any{5, 100 * time.Millisecond, 10 * time.Second, 2.0, 0.2}
	if got != want {
		t.Errorf("defaults: got %v, want %v", got, want)
	}
}

func TestRetryRejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     RetryConfig
		wantMsg string
	}{
		{"negative attempts", RetryConfig{MaxAttempts: -1}, "maxAttempts must be at least 1"},
		{"negative backoff", RetryConfig{InitialBackoff: -time.Second}, "initialBackoff must not be negative"},
		{"initial above max", RetryConfig{InitialBackoff: time.Minute, MaxBackoff: time.Second}, "must not exceed maxBackoff"},
		{"shrinking multiplier", RetryConfig{Multiplier: 0.5}, "multiplier must be at least 1"},
		{"negative jitter", RetryConfig{Jitter: -0.1}, "jitter must be between 0 and 1"},
		{"jitter above one", RetryConfig{Jitter: 1.5}, "jitter must be between 0 and 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mw, err := Retry(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Retry(%+v): got error %v, want one containing %q", tt.cfg, err, tt.wantMsg)
			}
			if mw != nil {
				t.Error("got a middleware along with the error, want nil")
			}
		})
	}
}

func TestRetryAcceptsDefaultsAndBoundaryValues(t *testing.T) {
	for _, cfg := range []RetryConfig{
		{},
		{MaxAttempts: 1, InitialBackoff: time.Second, MaxBackoff: time.Second, Multiplier: 1, Jitter: 1},
	} {
		if _, err := Retry(cfg); err != nil {
			t.Errorf("Retry(%+v): got error %v, want nil", cfg, err)
		}
	}
}

func TestRetryRetriesUntilSuccess(t *testing.T) {
	mw, sleeps := testRetry(t, RetryConfig{}, 0.5)
	next := newScriptedHandler(errBoom, errBoom, nil)

	if _, err := mw(next).Handle(context.Background(), testMessage()); err != nil {
		t.Fatalf("Handle: got error %v, want nil", err)
	}
	if next.calls() != 3 {
		t.Errorf("calls: got %d, want 3", next.calls())
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}
	if fmt.Sprint(sleeps.waits) != fmt.Sprint(want) {
		t.Errorf("waits: got %v, want %v", sleeps.waits, want)
	}
}

func TestRetryCallsRetriedBeforeEachAttemptAfterTheFirst(t *testing.T) {
	retried := 0
	mw, _ := testRetry(t, RetryConfig{MaxAttempts: 4, Retried: func() { retried++ }}, 0.5)

	if _, err := mw(newScriptedHandler(nil)).Handle(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if retried != 0 {
		t.Errorf("a first attempt that succeeds: got %d retries, want 0", retried)
	}
	_, _ = mw(newScriptedHandler(errBoom)).Handle(context.Background(), testMessage())
	if retried != 3 {
		t.Errorf("four failed attempts: got %d retries, want 3", retried)
	}
}

func TestRetryGivesUpAfterMaxAttemptsAndRecordsThem(t *testing.T) {
	mw, sleeps := testRetry(t, RetryConfig{MaxAttempts: 4}, 0.5)
	next := newScriptedHandler(errBoom)

	_, err := mw(next).Handle(context.Background(), testMessage())
	if !errors.Is(err, errBoom) {
		t.Fatalf("got error %v, want %v", err, errBoom)
	}
	if got := engine.Attempts(err); got != 4 {
		t.Errorf("Attempts: got %d, want 4", got)
	}
	if next.calls() != 4 || len(sleeps.waits) != 3 {
		t.Errorf("calls and waits: got %d and %d, want 4 and 3", next.calls(), len(sleeps.waits))
	}
}

func TestRetryBackoffGrowsAndIsCapped(t *testing.T) {
	cfg := RetryConfig{MaxAttempts: 6, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 3}
	mw, sleeps := testRetry(t, cfg, 0.5)

	_, _ = mw(newScriptedHandler(errBoom)).Handle(context.Background(), testMessage())
	want := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond, time.Second, time.Second}
	if fmt.Sprint(sleeps.waits) != fmt.Sprint(want) {
		t.Errorf("waits: got %v, want %v", sleeps.waits, want)
	}
}

func TestRetryJitterSpreadsWaitWithinBoundsAndCap(t *testing.T) {
	tests := []struct {
		name   string
		random float64
		cfg    RetryConfig
		want   time.Duration
	}{
		{"lowest", 0, RetryConfig{MaxAttempts: 2, Jitter: 0.2}, 80 * time.Millisecond},
		{"highest", 1, RetryConfig{MaxAttempts: 2, Jitter: 0.2}, 120 * time.Millisecond},
		{"capped", 1, RetryConfig{MaxAttempts: 2, InitialBackoff: time.Second, MaxBackoff: time.Second, Jitter: 0.5}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mw, sleeps := testRetry(t, tt.cfg, tt.random)
			_, _ = mw(newScriptedHandler(errBoom)).Handle(context.Background(), testMessage())
			if len(sleeps.waits) != 1 || sleeps.waits[0] != tt.want {
				t.Errorf("waits: got %v, want [%v]", sleeps.waits, tt.want)
			}
		})
	}
}

func TestRetryDoesNotRetrySettledOrPermanentOutcomes(t *testing.T) {
	deadLettered := fmt.Errorf("sent to dead: %w", engine.ErrDeadLettered)
	tests := []struct {
		name          string
		err           error
		wantPermanent bool
	}{
		{"permanent", engine.Permanent(errBoom), true},
		{"skip", engine.ErrSkip, false},
		{"dead-lettered", deadLettered, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mw, sleeps := testRetry(t, RetryConfig{}, 0.5)
			next := newScriptedHandler(tt.err)

			_, err := mw(next).Handle(context.Background(), testMessage())
			if !errors.Is(err, tt.err) || engine.IsPermanent(err) != tt.wantPermanent {
				t.Errorf("got error %v (permanent %v), want %v (permanent %v)", err, engine.IsPermanent(err), tt.err, tt.wantPermanent)
			}
			if next.calls() != 1 || len(sleeps.waits) != 0 {
				t.Errorf("calls and waits: got %d and %d, want 1 and 0", next.calls(), len(sleeps.waits))
			}
			if got := engine.Attempts(err); got != 1 {
				t.Errorf("Attempts: got %d, want 1", got)
			}
		})
	}
}

func TestRetryStopsWithoutWaitingWhenContextIsAlreadyDone(t *testing.T) {
	mw, sleeps := testRetry(t, RetryConfig{}, 0.5)
	ctx, cancel := context.WithCancel(context.Background())
	next := engine.HandlerFunc(func(context.Context, engine.Message) ([]engine.Message, error) {
		cancel()
		return nil, errBoom
	})

	_, err := mw(next).Handle(ctx, testMessage())
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) {
		t.Errorf("got error %v, want one wrapping %v and %v", err, context.Canceled, errBoom)
	}
	if len(sleeps.waits) != 0 {
		t.Errorf("waits: got %v, want none", sleeps.waits)
	}
}

// With an hour of backoff, this test only finishes if the wait ends with ctx.
func TestRetryWaitEndsPromptlyWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := RetryConfig{InitialBackoff: time.Hour, MaxBackoff: time.Hour}
	cfg.sleep = func(ctx context.Context, d time.Duration) error {
		cancel() // shutdown arrives during the wait
		return backoff.Sleep(ctx, d)
	}
	mw, err := Retry(cfg)
	if err != nil {
		t.Fatalf("Retry: %v", err)
	}
	next := newScriptedHandler(errBoom)

	_, err = mw(next).Handle(ctx, testMessage())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got error %v, want one wrapping %v", err, context.Canceled)
	}
	if got := engine.Attempts(err); got != 1 || next.calls() != 1 {
		t.Errorf("attempts and calls: got %d and %d, want 1 and 1", got, next.calls())
	}
}

func TestRetrySuccessPathDoesNotAllocate(t *testing.T) {
	mw, _ := testRetry(t, RetryConfig{}, 0.5)
	h := mw(noopHandler)
	msg := testMessage()
	ctx := context.Background()
	if allocs := testing.AllocsPerRun(100, func() { _, _ = h.Handle(ctx, msg) }); allocs != 0 {
		t.Errorf("allocations per message: got %v, want 0", allocs)
	}
}

func TestRetryWaitsAtLeastRetryAfterUpToMaxBackoff(t *testing.T) {
	mw, s := testRetry(t, RetryConfig{MaxAttempts: 3, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}, 0.5)
	afters := []time.Duration{2 * time.Second, time.Minute}
	calls := 0
	h := mw(engine.HandlerFunc(func(context.Context, engine.Message) ([]engine.Message, error) {
		calls++
		if calls <= len(afters) {
			return nil, engine.RetryAfter(errors.New("busy"), afters[calls-1])
		}
		return nil, nil
	}))
	if _, err := h.Handle(context.Background(), engine.Message{}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	want := []time.Duration{2 * time.Second, 5 * time.Second}
	if !slices.Equal(s.waits, want) {
		t.Errorf("waits: got %v, want %v (Retry-After, then capped at MaxBackoff)", s.waits, want)
	}
}
