package natsstore

import (
	"os"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
)

// TestMain stops the shared server the tests start, and removes its files.
func TestMain(m *testing.M) {
	code := m.Run()
	natstest.StopShared()
	os.Exit(code)
}
