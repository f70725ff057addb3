package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// Timeout gives each call of the next handler at most d; placed inside Retry
// that is per attempt. When the call fails because its own deadline passed
// while ctx is still live, the error says "handler timed out after <d>" and
// wraps context.DeadlineExceeded. It is not permanent: a slow dependency may
// answer in time on the next attempt. A d of zero or less means no timeout.
func Timeout(d time.Duration) engine.Middleware {
	if d <= 0 {
		return func(next engine.Handler) engine.Handler { return next }
	}
	prefix := "handler timed out after " + d.String()
	return func(next engine.Handler) engine.Handler {
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			attemptCtx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			out, err := next.Handle(attemptCtx, msg)
			if err == nil || ctx.Err() != nil || attemptCtx.Err() == nil || engine.IsPermanent(err) {
				return out, err
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%s: %w", prefix, err)
			}
			// The handler failed some other way after the deadline; keep
			// its error in the chain too.
			return nil, fmt.Errorf("%s: %w (handler error: %w)", prefix, context.DeadlineExceeded, err)
		})
	}
}
