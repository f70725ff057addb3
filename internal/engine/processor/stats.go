package processor

import "sync/atomic"

// Stats counts what a Processor has done since it was created.
type Stats struct {
	// Dispatched is the number of outbox entries appended, published and
	// marked dispatched.
	Dispatched uint64
	// Batches is the number of non-empty batches taken from the outbox.
	Batches uint64
	// Failures is the number of failed steps (read, append, publish, mark);
	// each is retried.
	Failures uint64
	// LastError is the newest failure's message, "" when there was none.
	LastError string
}

// counters are the atomics behind Stats, so Stats can be read while Run runs.
type counters struct {
	dispatched atomic.Uint64
	batches    atomic.Uint64
	failures   atomic.Uint64
	lastError  atomic.Pointer[string]
}

func (c *counters) fail(err error) {
	c.failures.Add(1)
	msg := err.Error()
	c.lastError.Store(&msg)
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Dispatched: c.dispatched.Load(),
		Batches:    c.batches.Load(),
		Failures:   c.failures.Load(),
	}
	if p := c.lastError.Load(); p != nil {
		s.LastError = *p
	}
	return s
}
