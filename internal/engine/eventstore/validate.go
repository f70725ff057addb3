package eventstore

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// ErrInvalidAppend is wrapped by the error Append returns for arguments no
// store can accept: an empty stream name, an expected version below Any, an
// event without an ID, with another stream's name, with a time outside the
// storable range, with a key longer than MaxKeyLen, or with a version but
// no key. Nothing of such a call is stored.
var ErrInvalidAppend = errors.New("invalid append")

// ErrSubscriptionClosed is returned by Subscription.Next after the
// subscription's own Close (ErrClosed says the whole store was closed).
var ErrSubscriptionClosed = errors.New("subscription closed")

// DefaultReadLimit is how many events Read returns when it is given a limit
// of zero or less. It bounds one call's memory; callers page with after.
const DefaultReadLimit = 1000

// Times a store keeps as int64 Unix nanoseconds: roughly years 1678 to 2262.
var (
	minStorableTime = time.Unix(0, math.MinInt64)
	maxStorableTime = time.Unix(0, math.MaxInt64)
)

// ValidateAppend checks the arguments of an Append before anything is
// stored, so every backend rejects the same calls with the same message. The
// error wraps ErrInvalidAppend and names the offending event by its index,
// events[i].
func ValidateAppend(stream string, expected ExpectedVersion, events []engine.Message) error {
	if stream == "" {
		return fmt.Errorf("%w: empty stream name", ErrInvalidAppend)
	}
	if expected < Any {
		return fmt.Errorf("%w to stream %q: expected version %d is neither Any, NoStream nor a sequence", ErrInvalidAppend, stream, expected)
	}
	for i, e := range events {
		switch {
		case e.ID == "":
			return fmt.Errorf("%w to stream %q: events[%d] has an empty id", ErrInvalidAppend, stream, i)
		case e.Stream != "" && e.Stream != stream:
			return fmt.Errorf("%w to stream %q: events[%d] (id %q) belongs to stream %q", ErrInvalidAppend, stream, i, e.ID, e.Stream)
		case !e.Time.IsZero() && (e.Time.Before(minStorableTime) || e.Time.After(maxStorableTime)):
			return fmt.Errorf("%w to stream %q: events[%d] (id %q) has time %s outside the storable range",
				ErrInvalidAppend, stream, i, e.ID, e.Time)
		case len(e.Key) > MaxKeyLen:
			return fmt.Errorf("%w to stream %q: events[%d] (id %q) has a key of %d bytes, more than %d",
				ErrInvalidAppend, stream, i, e.ID, len(e.Key), MaxKeyLen)
		case e.Key == "" && e.Version != 0:
			return fmt.Errorf("%w to stream %q: events[%d] (id %q) has version %d but no key",
				ErrInvalidAppend, stream, i, e.ID, e.Version)
		}
	}
	return nil
}
