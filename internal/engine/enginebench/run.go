package enginebench

import (
	"context"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

// RunEngine runs e in the background until tb ends, then stops it and fails
// tb if Run returned an error. It does not Close e: register that cleanup
// before calling RunEngine, so it runs after Run has returned.
func RunEngine(tb testing.TB, e *core.Engine) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("engine Run returned %v, want nil", err)
		}
	})
}
