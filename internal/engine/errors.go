package engine

import (
	"errors"
	"fmt"
	"time"
)

// ErrSkip is returned by middleware (such as Filter or Dedupe) that decides a
// message should not reach the handler. It is not a failure: the message counts
// as handled and is not retried or dead-lettered.
var ErrSkip = errors.New("message skipped")

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix (an undecodable payload,
// a CEL evaluation error). Retry gives up on it at once and the message is
// dead-lettered. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return Permanent(fmt.Errorf(format, args...))
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// ErrDeadLettered is wrapped by the error the dead-letter middleware returns
// once it has put a failed message in the dead-letter stream. Like ErrSkip it
// settles the message: the router moves on instead of redelivering it.
var ErrDeadLettered = errors.New("message dead-lettered")

// attemptsError records how many times a handler was tried before err.
type attemptsError struct {
	err      error
	attempts int
}

func (e *attemptsError) Error() string { return e.err.Error() }
func (e *attemptsError) Unwrap() error { return e.err }

// WithAttempts records that err came after n attempts (Retry uses it so the
// dead-letter headers can say how many tries were made).
func WithAttempts(err error, n int) error {
	if err == nil {
		return nil
	}
	return &attemptsError{err: err, attempts: n}
}

// Attempts returns the attempt count recorded by WithAttempts, or 1.
func Attempts(err error) int {
	var a *attemptsError
	if errors.As(err, &a) {
		return a.attempts
	}
	return 1
}

// retryAfterError asks Retry to wait at least after before the next attempt.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as one to retry no sooner than after, as an HTTP
// sink's Retry-After asks. RetryAfter(nil, d) is nil.
func RetryAfter(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, after: after}
}

// RetryDelay returns the wait RetryAfter recorded in err, if any.
func RetryDelay(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}
