package enginetest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// recordingT stands in for the test Eventually fails: Fatalf records the
// message and ends the goroutine, as testing.T's does.
type recordingT struct {
	testing.TB
	failure string
}

func (r *recordingT) Helper() {}

func (r *recordingT) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// runEventually runs eventually on its own goroutine (Fatalf ends it) and
// returns the failure message, "" when the condition held.
func runEventually(what string, check func() (bool, string), timeout time.Duration) string {
	r := &recordingT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		eventually(r, what, check, timeout)
	}()
	<-done
	return r.failure
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	cond := describing(func() bool { calls++; return calls == 3 })
	if failure := runEventually("the third call", cond, time.Minute); failure != "" {
		t.Fatalf("failed with %q, want success", failure)
	}
	if calls != 3 {
		t.Fatalf("condition called %d times, want 3 (until it held)", calls)
	}
}

func TestEventuallyFailsNamingWhatWasAwaited(t *testing.T) {
	failure := runEventually("the moon", describing(func() bool { return false }), 20*time.Millisecond)
	if failure != "waited 20ms for the moon" {
		t.Fatalf("failure %q, want %q", failure, "waited 20ms for the moon")
	}
}

func TestEventuallyFailureShowsWhatWasSeenLast(t *testing.T) {
	n := 0
	cond := describing(func() (bool, string) { n++; return false, fmt.Sprintf("try %d", n) })
	failure := runEventually("the moon", cond, 20*time.Millisecond)
	want := fmt.Sprintf("waited 20ms for the moon; last saw: try %d", n)
	if failure != want {
		t.Fatalf("failure %q, want %q", failure, want)
	}
}

func TestEventuallySpacesItsPollsOut(t *testing.T) {
	calls := 0
	_ = runEventually("nothing", describing(func() bool { calls++; return false }), 200*time.Millisecond)
	// 1+2+4+8ms, then 10ms apart: about 22 polls in 200ms; a busy loop
	// would make thousands, a fixed millisecond about 200.
	if calls < 5 || calls > 60 {
		t.Fatalf("%d polls in 200ms, want between 5 and 60", calls)
	}
}

func TestEventuallyTakesBothKindsOfCondition(t *testing.T) {
	var polled []string
	Eventually(t, "a plain condition", func() bool { polled = append(polled, "plain"); return true })
	Eventually(t, "a describing condition", func() (bool, string) { polled = append(polled, "describing"); return true, "" })
	if strings.Join(polled, ",") != "plain,describing" {
		t.Fatalf("polled %v, want each condition once", polled)
	}
}
