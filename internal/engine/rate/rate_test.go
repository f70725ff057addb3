package rate_test

import (
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/rate"
)

var start = time.Unix(1_800_000_000, 0)

func at(seconds float64) time.Time {
	return start.Add(time.Duration(seconds * float64(time.Second)))
}

func TestPerSecondAveragesTheWholeSecondsOfTheWindow(t *testing.T) {
	var c rate.Counter
	for s := range 10 {
		c.Add(at(float64(s)+0.5), 3) // 3 events in each of seconds 0..9
	}
	if got := c.PerSecond(at(10.2)); got != 3 {
		t.Fatalf("PerSecond after 10 s of 3 events a second = %v, want 3", got)
	}
}

func TestPerSecondLeavesOutTheSecondUnderWay(t *testing.T) {
	var c rate.Counter
	c.Add(at(5.1), 20)
	if got := c.PerSecond(at(5.9)); got != 0 {
		t.Fatalf("PerSecond within the second of the events = %v, want 0", got)
	}
	if got := c.PerSecond(at(6)); got != 2 {
		t.Fatalf("PerSecond the second after 20 events = %v, want 2 (20 over 10 s)", got)
	}
}

func TestEventsOlderThanTheWindowNoLongerCount(t *testing.T) {
	var c rate.Counter
	c.Add(at(0), 10)
	c.Add(at(4), 10)
	if got := c.PerSecond(at(10)); got != 2 {
		t.Fatalf("PerSecond at 10 s = %v, want 2 (both seconds in the window)", got)
	}
	if got := c.PerSecond(at(11)); got != 1 {
		t.Fatalf("PerSecond at 11 s = %v, want 1 (second 0 has left the window)", got)
	}
	if got := c.PerSecond(at(60)); got != 0 {
		t.Fatalf("PerSecond a minute later = %v, want 0", got)
	}
}

func TestABucketReusedForANewSecondStartsFromZero(t *testing.T) {
	var c rate.Counter
	c.Add(at(0), 100)
	c.Add(at(11), 1) // the same bucket as second 0 (the ring has 11)
	if got := c.PerSecond(at(12)); got != 0.1 {
		t.Fatalf("PerSecond = %v, want 0.1: the old second's 100 must be gone", got)
	}
}

func TestConcurrentAddsAreAllCounted(t *testing.T) {
	var c rate.Counter
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				c.Add(at(3.5), 1)
			}
		})
	}
	wg.Wait()
	if got := c.PerSecond(at(4)); got != 800 {
		t.Fatalf("PerSecond after 8000 concurrent events = %v, want 800", got)
	}
}
