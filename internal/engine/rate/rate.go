// Package rate counts events per second over a short sliding window, cheaply
// enough to sit on the ingest path: adding is one atomic compare-and-swap,
// with no lock and no allocation.
package rate

import (
	"sync/atomic"
	"time"
)

// Window is the span PerSecond averages over.
const Window = 10 * time.Second

const (
	windowSeconds = int64(Window / time.Second)
	// One bucket per second of the window and one for the second under way,
	// which PerSecond leaves out (it is not over yet).
	buckets   = windowSeconds + 1
	countBits = 32
	countMask = 1<<countBits - 1
)

// Counter counts events per second of the last Window. Its zero value is
// ready; it is safe for concurrent use.
type Counter struct {
	// Each bucket packs a Unix second (high 32 bits) and the events counted
	// in it (low 32 bits), so that moving a bucket to a new second and
	// counting into it are one atomic step.
	buckets [buckets]atomic.Uint64
}

// Add counts n events at now.
func (c *Counter) Add(now time.Time, n int) {
	if n <= 0 {
		return
	}
	sec := now.Unix()
	b := &c.buckets[bucketOf(sec)]
	for {
		old := b.Load()
		next := pack(sec, uint64(n))
		if secondOf(old) == uint64(sec)&countMask {
			// Saturate rather than carry into the second's bits.
			next = old&^countMask | min(old&countMask+uint64(n), countMask)
		}
		if b.CompareAndSwap(old, next) {
			return
		}
	}
}

// PerSecond is the average number of events per second over the Window of
// whole seconds before now's.
func (c *Counter) PerSecond(now time.Time) float64 {
	sec := now.Unix()
	var sum uint64
	for s := sec - windowSeconds; s < sec; s++ {
		v := c.buckets[bucketOf(s)].Load()
		if secondOf(v) == uint64(s)&countMask {
			sum += v & countMask
		}
	}
	return float64(sum) / float64(windowSeconds)
}

func bucketOf(sec int64) int64 { return (sec%buckets + buckets) % buckets }

func pack(sec int64, n uint64) uint64 {
	return (uint64(sec)&countMask)<<countBits | min(n, countMask)
}

func secondOf(v uint64) uint64 { return v >> countBits }
