package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

func TestSleepWaitsForTheDuration(t *testing.T) {
	start := time.Now()
	if err := engine.Sleep(context.Background(), 20*time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v, want nil", err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("Sleep returned after %v, want at least 20ms", waited)
	}
}

func TestSleepEndsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := engine.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
}
