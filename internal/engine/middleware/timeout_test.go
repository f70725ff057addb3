package middleware

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// blockingHandler waits for its context to end and returns its error.
var blockingHandler = engine.HandlerFunc(func(ctx context.Context, _ engine.Message) ([]engine.Message, error) {
	<-ctx.Done()
	return nil, ctx.Err()
})

func TestTimeoutErrorNamesTheDurationAndIsRetryable(t *testing.T) {
	_, err := Timeout(10*time.Millisecond)(blockingHandler).Handle(context.Background(), testMessage())

	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got error %v, want one wrapping %v", err, context.DeadlineExceeded)
	}
	if want := "handler timed out after 10ms"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got error %v, want one saying %q", err, want)
	}
	if engine.IsPermanent(err) {
		t.Errorf("got permanent error %v, want a retryable one", err)
	}
}

func TestTimeoutKeepsHandlerErrorReturnedAfterTheDeadline(t *testing.T) {
	late := engine.HandlerFunc(func(ctx context.Context, _ engine.Message) ([]engine.Message, error) {
		<-ctx.Done()
		return nil, errBoom
	})
	_, err := Timeout(time.Millisecond)(late).Handle(context.Background(), testMessage())
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errBoom) {
		t.Errorf("got error %v, want one wrapping %v and %v", err, context.DeadlineExceeded, errBoom)
	}
}

func TestTimeoutLeavesParentCancellationAlone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Timeout(time.Hour)(blockingHandler).Handle(ctx, testMessage())
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "timed out") {
		t.Errorf("got error %v, want the parent's %v unchanged", err, context.Canceled)
	}
}

func TestTimeoutLeavesPermanentErrorAlone(t *testing.T) {
	permanent := engine.Permanent(errBoom)
	late := engine.HandlerFunc(func(ctx context.Context, _ engine.Message) ([]engine.Message, error) {
		<-ctx.Done()
		return nil, permanent
	})
	if _, err := Timeout(time.Millisecond)(late).Handle(context.Background(), testMessage()); err != permanent {
		t.Errorf("got error %v, want %v unchanged", err, permanent)
	}
}

func TestTimeoutGivesEachCallADeadline(t *testing.T) {
	var deadline time.Time
	var ok bool
	next := engine.HandlerFunc(func(ctx context.Context, _ engine.Message) ([]engine.Message, error) {
		deadline, ok = ctx.Deadline()
		return nil, nil
	})
	before := time.Now()
	if _, err := Timeout(5*time.Second)(next).Handle(context.Background(), testMessage()); err != nil {
		t.Fatalf("Handle: got error %v, want nil", err)
	}
	if !ok || deadline.Before(before.Add(5*time.Second)) {
		t.Errorf("deadline: got %v (set %v), want at least %v", deadline, ok, before.Add(5*time.Second))
	}
}

func TestTimeoutOfZeroMeansNoDeadline(t *testing.T) {
	next := engine.HandlerFunc(func(ctx context.Context, _ engine.Message) ([]engine.Message, error) {
		if _, ok := ctx.Deadline(); ok {
			return nil, errors.New("got a deadline")
		}
		return nil, nil
	})
	if _, err := Timeout(0)(next).Handle(context.Background(), testMessage()); err != nil {
		t.Errorf("Handle: got error %v, want nil", err)
	}
}

// Inside Retry the timeout is per attempt: a slow first attempt is retried.
func TestTimeoutInsideRetryAppliesPerAttempt(t *testing.T) {
	retry, sleeps := testRetry(t, RetryConfig{MaxAttempts: 2}, 0.5)
	attempts := 0
	next := engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
		attempts++
		if attempts == 1 {
			return blockingHandler(ctx, msg)
		}
		return nil, nil
	})
	h := engine.Chain(next, retry, Timeout(5*time.Millisecond))
	if _, err := h.Handle(context.Background(), testMessage()); err != nil {
		t.Fatalf("Handle: got error %v, want nil", err)
	}
	if attempts != 2 || len(sleeps.waits) != 1 {
		t.Errorf("attempts and waits: got %d and %d, want 2 and 1", attempts, len(sleeps.waits))
	}
}
