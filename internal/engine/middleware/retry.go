package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
)

// RetryConfig configures Retry. Zero fields take the defaults noted on each.
type RetryConfig struct {
	// MaxAttempts is how many times the handler is called at most, counting
	// the first call. Default 5.
	MaxAttempts int
	// InitialBackoff is the wait after the first failure. Default 100ms.
	InitialBackoff time.Duration
	// MaxBackoff caps every wait, jitter included. Default 10s.
	MaxBackoff time.Duration
	// Multiplier grows the wait after each further failure. Default 2.
	Multiplier float64
	// Jitter spreads each wait uniformly over ±Jitter of its value, so
	// handlers that failed together do not retry in lockstep. Default 0.2.
	Jitter float64
	// Retried, when set, is called before each attempt after the first:
	// the engine counts a handler's retries with it.
	Retried func()

	// sleep and random are replaced by tests to make backoff fast and
	// deterministic; nil means backoff.Sleep and math/rand/v2.
	sleep  func(ctx context.Context, d time.Duration) error
	random func() float64
}

func (c *RetryConfig) setDefaults() {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.Multiplier == 0 {
		c.Multiplier = 2
	}
	if c.Jitter == 0 {
		c.Jitter = 0.2
	}
	if c.sleep == nil {
		c.sleep = backoff.Sleep
	}
}

// Validate reports every setting that is out of range.
func (c RetryConfig) Validate() error {
	var errs []error
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("retry: maxAttempts must be at least 1, got %d", c.MaxAttempts))
	}
	if c.InitialBackoff < 0 {
		errs = append(errs, fmt.Errorf("retry: initialBackoff must not be negative, got %s", c.InitialBackoff))
	}
	if c.InitialBackoff > c.MaxBackoff {
		errs = append(errs, fmt.Errorf("retry: initialBackoff (%s) must not exceed maxBackoff (%s)", c.InitialBackoff, c.MaxBackoff))
	}
	if c.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("retry: multiplier must be at least 1, got %g", c.Multiplier))
	}
	if c.Jitter < 0 || c.Jitter > 1 {
		errs = append(errs, fmt.Errorf("retry: jitter must be between 0 and 1, got %g", c.Jitter))
	}
	return errors.Join(errs...)
}

// Retry calls the next handler again when it fails, waiting an exponentially
// growing, jittered and capped backoff between attempts.
//
// A failure marked engine.RetryAfter waits at least that long (up to
// MaxBackoff). It does not retry an engine.IsPermanent error, an outcome that settles the
// message (engine.ErrSkip, engine.ErrDeadLettered; returned as they are), or
// anything once ctx is done: a wait ends as soon as ctx does and the context's
// error is returned. A final failure is wrapped with engine.WithAttempts so
// later middleware can say how many tries were made.
func Retry(cfg RetryConfig) (engine.Middleware, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func(next engine.Handler) engine.Handler {
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			out, err := next.Handle(ctx, msg)
			if err == nil {
				return out, nil
			}
			waits := cfg.newBackoff()
			for attempt := 1; ; attempt++ {
				switch {
				case errors.Is(err, engine.ErrSkip), errors.Is(err, engine.ErrDeadLettered):
					return out, err
				case engine.IsPermanent(err), attempt >= cfg.MaxAttempts:
					return out, engine.WithAttempts(err, attempt)
				case ctx.Err() != nil:
					return nil, engine.WithAttempts(stoppedError(ctx, attempt, err), attempt)
				}
				if serr := cfg.sleep(ctx, cfg.wait(&waits, err)); serr != nil {
					return nil, engine.WithAttempts(stoppedError(ctx, attempt, err), attempt)
				}
				if cfg.Retried != nil {
					cfg.Retried()
				}
				out, err = next.Handle(ctx, msg)
				if err == nil {
					return out, nil
				}
			}
		})
	}, nil
}

// wait is the pause before the next attempt: the backoff's, or the
// failure's RetryAfter when that is longer, up to MaxBackoff so that a
// sink cannot park delivery for longer than the pipeline allows.
func (c *RetryConfig) wait(waits *backoff.Backoff, err error) time.Duration {
	d := waits.Next()
	if after, ok := engine.RetryDelay(err); ok && after > d {
		d = min(after, c.MaxBackoff)
	}
	return d
}

// newBackoff returns the waits between the attempts at one message.
func (c *RetryConfig) newBackoff() backoff.Backoff {
	return backoff.Backoff{
		Initial: c.InitialBackoff,
		Max:     c.MaxBackoff,
		Factor:  c.Multiplier,
		Jitter:  c.Jitter,
		Random:  c.random,
	}
}

// stoppedError says retrying stopped because ctx ended; it wraps both ctx's
// error (so shutdown is recognisable with errors.Is) and the last handler error.
func stoppedError(ctx context.Context, attempts int, last error) error {
	return fmt.Errorf("retry stopped after %d attempts: %w (last error: %w)", attempts, ctx.Err(), last)
}
