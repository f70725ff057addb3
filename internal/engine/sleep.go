package engine

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx ends, whichever comes first; it returns
// ctx's error in the second case. Parts that back off (Retry, the router, the
// outbox processor) use it so a shutdown never waits out a pause.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
