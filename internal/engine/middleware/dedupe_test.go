package middleware

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// fakeClock is a settable clock for Dedupe.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testDedupe builds Dedupe on a fake clock.
func testDedupe(t *testing.T, cfg DedupeConfig) (engine.Middleware, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.now = clock.Now
	mw, err := Dedupe(cfg)
	if err != nil {
		t.Fatalf("Dedupe(%+v): %v", cfg, err)
	}
	return mw, clock
}

// deliver hands msg to h and reports whether h skipped it.
func deliver(t *testing.T, h engine.Handler, msg engine.Message) (skipped bool) {
	t.Helper()
	_, err := h.Handle(context.Background(), msg)
	if err != nil && !errors.Is(err, engine.ErrSkip) {
		t.Fatalf("Handle(%s/%s): got error %v, want nil or ErrSkip", msg.Stream, msg.ID, err)
	}
	return errors.Is(err, engine.ErrSkip)
}

func withID(id string) engine.Message {
	msg := testMessage()
	msg.ID = id
	return msg
}

func TestDedupeSkipsEventHandledWithinWindow(t *testing.T) {
	mw, clock := testDedupe(t, DedupeConfig{Window: time.Minute})
	next := newScriptedHandler()
	h := mw(next)

	if deliver(t, h, testMessage()) {
		t.Fatal("first delivery was skipped, want handled")
	}
	clock.Advance(59 * time.Second)
	if !deliver(t, h, testMessage()) {
		t.Error("second delivery within the window was handled, want skipped")
	}
	if next.calls() != 1 {
		t.Errorf("next calls: got %d, want 1", next.calls())
	}
}

func TestDedupeForgetsEventAfterWindow(t *testing.T) {
	mw, clock := testDedupe(t, DedupeConfig{Window: time.Minute})
	next := newScriptedHandler()
	h := mw(next)

	deliver(t, h, testMessage())
	clock.Advance(time.Minute)
	if deliver(t, h, testMessage()) {
		t.Error("delivery after the window was skipped, want handled")
	}
	if next.calls() != 2 {
		t.Errorf("next calls: got %d, want 2", next.calls())
	}
}

// Watermill issue #580: a failed event must not be remembered, or its
// redelivery would be dropped.
func TestDedupeRemembersOnlySuccessSoFailuresAreRedelivered(t *testing.T) {
	mw, _ := testDedupe(t, DedupeConfig{})
	next := newScriptedHandler(errBoom, nil)
	h := mw(next)

	if _, err := h.Handle(context.Background(), testMessage()); !errors.Is(err, errBoom) {
		t.Fatalf("first delivery: got error %v, want %v", err, errBoom)
	}
	if deliver(t, h, testMessage()) {
		t.Fatal("redelivery after a failure was skipped, want handled")
	}
	if !deliver(t, h, testMessage()) {
		t.Error("delivery after the success was handled, want skipped")
	}
	if next.calls() != 2 {
		t.Errorf("next calls: got %d, want 2", next.calls())
	}
}

func TestDedupeKeyIsStreamAndID(t *testing.T) {
	mw, _ := testDedupe(t, DedupeConfig{})
	h := mw(newScriptedHandler())
	a := testMessage()
	b := testMessage()
	b.Stream = "orders"

	deliver(t, h, a)
	if deliver(t, h, b) {
		t.Error("same id on another stream was skipped, want handled")
	}
}

func TestDedupeKeepsSeparateMemoryPerHandler(t *testing.T) {
	mw, _ := testDedupe(t, DedupeConfig{})
	first, second := mw(newScriptedHandler()), mw(newScriptedHandler())

	deliver(t, first, testMessage())
	if deliver(t, second, testMessage()) {
		t.Error("second handler skipped an event only the first one handled, want handled")
	}
}

func TestDedupeEvictsOldestBeyondMaxEntries(t *testing.T) {
	// 150 entries in a bound of 100 makes the ring grow and then wrap.
	mw, _ := testDedupe(t, DedupeConfig{MaxEntries: 100})
	h := mw(newScriptedHandler())
	for i := range 150 {
		deliver(t, h, withID(strconv.Itoa(i)))
	}
	// Check the newest first: re-handling an evicted one records it again.
	for i := 149; i >= 50; i-- {
		if !deliver(t, h, withID(strconv.Itoa(i))) {
			t.Errorf("event %d (among the newest 100) was handled, want skipped", i)
		}
	}
	for i := range 50 {
		if deliver(t, h, withID(strconv.Itoa(i))) {
			t.Errorf("event %d (evicted) was skipped, want handled", i)
		}
	}
}

func TestSeenSetStaysWithinMaxEntries(t *testing.T) {
	s := newSeenSet(time.Hour, 100)
	now := time.Now()
	for i := range 1000 {
		s.claim(s.keyOf("s", strconv.Itoa(i)), now)
	}
	if len(s.keys) != 100 || s.n != 100 || len(s.ring) != 100 {
		t.Errorf("keys, entries, ring size: got %d, %d, %d, want 100 each", len(s.keys), s.n, len(s.ring))
	}
}

func TestSeenSetExpiresOldEntriesOnAdd(t *testing.T) {
	s := newSeenSet(time.Minute, 100)
	start := time.Now()
	for i := range 10 {
		s.claim(s.keyOf("s", strconv.Itoa(i)), start)
	}
	s.claim(s.keyOf("s", "late"), start.Add(time.Minute))
	if len(s.keys) != 1 || s.n != 1 {
		t.Errorf("keys and entries after the window: got %d and %d, want 1 and 1", len(s.keys), s.n)
	}
}

// Expiry moves the ring's head, so the ring later fills and grows while it
// wraps around; entries must keep their age order through the growth.
func TestSeenSetKeepsAgeOrderWhenGrowingAWrappedRing(t *testing.T) {
	s := newSeenSet(time.Minute, 1000)
	t0 := time.Now()
	key := func(batch string, i int) dedupeKey { return s.keyOf(batch, strconv.Itoa(i)) }
	for i := range 40 {
		s.claim(key("a", i), t0)
	}
	for i := range 24 {
		s.claim(key("b", i), t0.Add(30*time.Second))
	}
	// Expires batch a, then refills the 64 slots past the end of the ring
	// and one more, which makes it grow.
	for i := range 41 {
		s.claim(key("c", i), t0.Add(time.Minute))
	}
	if len(s.ring) <= 64 {
		t.Fatalf("ring size: got %d, want it grown past 64", len(s.ring))
	}
	now := t0.Add(90 * time.Second) // b expires now, c does not
	for i := range 24 {
		if s.contains(key("b", i), now) {
			t.Errorf("b%d: remembered after its window, want forgotten", i)
		}
	}
	for i := range 41 {
		if !s.contains(key("c", i), now) {
			t.Errorf("c%d: forgotten within its window, want remembered", i)
		}
	}
	if s.n != len(s.keys) {
		t.Errorf("ring entries and keys: got %d and %d, want equal", s.n, len(s.keys))
	}
	s.contains(key("c", 0), t0.Add(2*time.Minute))
	if s.n != 0 || len(s.keys) != 0 {
		t.Errorf("entries and keys after every window: got %d and %d, want 0 and 0", s.n, len(s.keys))
	}
}

func TestDedupeIsSafeForConcurrentUse(t *testing.T) {
	mw, _ := testDedupe(t, DedupeConfig{})
	h := mw(newScriptedHandler())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				msg := withID(fmt.Sprint(g, "-", i%80))
				if _, err := h.Handle(context.Background(), msg); err != nil && !errors.Is(err, engine.ErrSkip) {
					t.Errorf("Handle: got error %v, want nil or ErrSkip", err)
				}
			}
		})
	}
	wg.Wait()
	for g := range 4 {
		for i := range 80 {
			if !deliver(t, h, withID(fmt.Sprint(g, "-", i))) {
				t.Errorf("event %d-%d handled again after the concurrent run, want skipped", g, i)
			}
		}
	}
}

func TestDedupeRejectsInvalidConfig(t *testing.T) {
	for _, cfg := range []DedupeConfig{{Window: -time.Second}, {MaxEntries: -1}} {
		if _, err := Dedupe(cfg); err == nil {
			t.Errorf("Dedupe(%+v): got nil error, want one", cfg)
		}
	}
}

func TestDedupeConfigDefaults(t *testing.T) {
	var cfg DedupeConfig
	cfg.setDefaults()
	if cfg.Window != 10*time.Minute || cfg.MaxEntries != 10_000 {
		t.Errorf("defaults: got window %v and max %d, want 10m0s and 10000", cfg.Window, cfg.MaxEntries)
	}
}
