package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
)

// waits returns the next n waits of b.
func waits(b *backoff.Backoff, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = b.Next()
	}
	return out
}

func checkWaits(t *testing.T, got []time.Duration, want ...time.Duration) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("waits: got %v, want %v", got, want)
	}
}

func TestWaitsDoubleFromInitialUpToMax(t *testing.T) {
	b := backoff.Backoff{Initial: 50 * time.Millisecond, Max: 300 * time.Millisecond}
	ms := time.Millisecond
	checkWaits(t, waits(&b, 5), 50*ms, 100*ms, 200*ms, 300*ms, 300*ms)
}

func TestFactorSetsTheGrowth(t *testing.T) {
	b := backoff.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Factor: 3}
	ms := time.Millisecond
	checkWaits(t, waits(&b, 5), 100*ms, 300*ms, 900*ms, time.Second, time.Second)

	constant := backoff.Backoff{Initial: 7 * time.Millisecond, Factor: 1}
	checkWaits(t, waits(&constant, 3), 7*ms, 7*ms, 7*ms)
}

func TestFractionalFactorCompoundsWithoutRounding(t *testing.T) {
	b := backoff.Backoff{Initial: time.Nanosecond, Factor: 1.5}
	// Rounded at every step, 1ns * 1.5 would stay 1ns for ever.
	checkWaits(t, waits(&b, 4), 1, 1, 2, 3)
}

func TestInitialAboveMaxIsCapped(t *testing.T) {
	b := backoff.Backoff{Initial: time.Minute, Max: time.Second}
	checkWaits(t, waits(&b, 2), time.Second, time.Second)
}

func TestWithoutMaxWaitsGrowWithoutOverflowing(t *testing.T) {
	b := backoff.Backoff{Initial: time.Hour}
	var last time.Duration
	for i := range 100 {
		d := b.Next()
		if d < last {
			t.Fatalf("wait %d: got %v after %v, want no shrinking (an overflow)", i+1, d, last)
		}
		last = d
	}
}

func TestResetStartsOverAtInitial(t *testing.T) {
	b := backoff.Backoff{Initial: 10 * time.Millisecond, Max: time.Second}
	waits(&b, 4)
	b.Reset()
	checkWaits(t, waits(&b, 2), 10*time.Millisecond, 20*time.Millisecond)
}

func TestJitterSpreadsEachWaitWithinItsBoundsAndTheCap(t *testing.T) {
	tests := []struct {
		name   string
		random float64
		b      backoff.Backoff
		want   []time.Duration
	}{
		{"lowest", 0, backoff.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2},
			[]time.Duration{80 * time.Millisecond, 160 * time.Millisecond}},
		{"middle", 0.5, backoff.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2},
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}},
		{"highest", 1, backoff.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2},
			[]time.Duration{120 * time.Millisecond, 240 * time.Millisecond}},
		{"capped", 1, backoff.Backoff{Initial: time.Second, Max: time.Second, Jitter: 0.5},
			[]time.Duration{time.Second, time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.b
			b.Random = func() float64 { return tt.random }
			checkWaits(t, waits(&b, 2), tt.want...)
		})
	}
}

func TestJitterDrawsFromRandomByDefault(t *testing.T) {
	b := backoff.Backoff{Initial: time.Second, Factor: 1, Jitter: 0.5}
	seen := map[time.Duration]bool{}
	for range 50 {
		d := b.Next()
		if d < 500*time.Millisecond || d > 1500*time.Millisecond {
			t.Fatalf("wait %v, want between 500ms and 1.5s", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Fatalf("50 jittered waits were all %v, want them spread", b.Next())
	}
}

func TestWaitSleepsTheNextWait(t *testing.T) {
	b := backoff.Backoff{Initial: 20 * time.Millisecond, Max: time.Second}
	start := time.Now()
	if err := b.Wait(context.Background()); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("Wait returned after %v, want at least 20ms", waited)
	}
	if got := b.Next(); got != 40*time.Millisecond {
		t.Fatalf("the wait after Wait: got %v, want 40ms", got)
	}
}

func TestWaitEndsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	b := backoff.Backoff{Initial: time.Hour}
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
}

func TestSleepWaitsForTheDuration(t *testing.T) {
	start := time.Now()
	if err := backoff.Sleep(context.Background(), 20*time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v, want nil", err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("Sleep returned after %v, want at least 20ms", waited)
	}
}

func TestSleepEndsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := backoff.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
}
