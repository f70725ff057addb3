// Package enginetest holds what the tests of the engine, and of the HTTP API
// in front of it, share.
package enginetest

import (
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
)

// Timeout bounds every Eventually. It is far above what any awaited step
// needs, so it only matters when the behaviour under test is broken.
const Timeout = 15 * time.Second

// Condition is what Eventually polls: a func() bool, or a
// func() (bool, string) that also describes what it saw, for the failure
// message.
type Condition interface {
	func() bool | func() (bool, string)
}

// Eventually calls cond until it holds, and fails t if Timeout passes first,
// with a message that names what was awaited and, from a condition that
// describes it, what was seen last. Polls start a millisecond apart and
// space out to 10ms: a quick step is seen at once, and a costly condition
// (an HTTP request, a call to the API server) is not run in a tight loop.
// Call it from the test's goroutine; cond may fail t itself.
func Eventually[C Condition](t testing.TB, what string, cond C) {
	t.Helper()
	eventually(t, what, describing(cond), Timeout)
}

func eventually(t testing.TB, what string, check func() (bool, string), timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pauses := backoff.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}
	for {
		ok, seen := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if seen != "" {
				t.Fatalf("waited %s for %s; last saw: %s", timeout, what, seen)
			}
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(pauses.Next())
	}
}

// describing gives both kinds of Condition the shape of the second.
func describing[C Condition](cond C) func() (bool, string) {
	switch c := any(cond).(type) {
	case func() (bool, string):
		return c
	case func() bool:
		return func() (bool, string) { return c(), "" }
	}
	panic("enginetest: unknown kind of Condition") // the type set has two members
}
