// Package backoff spaces out the attempts of an operation that keeps failing:
// each wait longer than the one before, up to a cap, and never longer than the
// caller's context lasts.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields the waits between attempts: Initial after the first
// failure, each next one Factor times the one before, none above Max.
//
// The fields are the policy and are not changed by use; the position in the
// sequence is kept beside them, so a Backoff is used by one goroutine at a
// time and Reset starts it over (after a success, typically).
type Backoff struct {
	// Initial is the first wait.
	Initial time.Duration
	// Max caps every wait, jitter included; 0 means no cap.
	Max time.Duration
	// Factor multiplies the wait after each further failure; 0 means 2,
	// 1 keeps every wait at Initial.
	Factor float64
	// Jitter, from 0 to 1, spreads each wait uniformly over ±Jitter of its
	// value (0.2: from 80% to 120%), so callers that failed together do not
	// retry in lockstep. 0 means none.
	Jitter float64
	// Random returns a number in [0, 1) to draw the jitter from; nil means
	// math/rand/v2. Tests set it to make waits predictable.
	Random func() float64

	// next is the wait before jitter that Next returns; 0 until the first
	// Next after a Reset. A float64 so that fractional factors compound
	// without rounding at every step.
	next float64
}

// uncapped is the cap of a Backoff without Max: about 146 years, far enough
// below the largest time.Duration that a wait never overflows it.
const uncapped = time.Duration(1 << 62)

// Next returns the wait before the next attempt and moves on to the one
// after it.
func (b *Backoff) Next() time.Duration {
	limit := float64(uncapped)
	if b.Max > 0 {
		limit = float64(b.Max)
	}
	if b.next == 0 {
		b.next = min(float64(b.Initial), limit)
	}
	wait := b.next
	factor := b.Factor
	if factor == 0 {
		factor = 2
	}
	b.next = min(wait*factor, limit)
	if b.Jitter > 0 {
		random := b.Random
		if random == nil {
			random = rand.Float64
		}
		wait = min(wait*(1+b.Jitter*(2*random()-1)), limit)
	}
	return time.Duration(wait)
}

// Reset makes the next wait Initial again.
func (b *Backoff) Reset() {
	b.next = 0
}

// Wait sleeps for the next wait, or until ctx ends; in that case it returns
// ctx's error.
func (b *Backoff) Wait(ctx context.Context) error {
	return Sleep(ctx, b.Next())
}

// Sleep waits for d, or until ctx ends, whichever comes first; it returns
// ctx's error in the second case, so a shutdown never waits out a pause.
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
