package engine

import "context"

// HeaderDeadLetterRedrives is how many times the event had been redriven
// before the failure that dead-lettered it; absent on a first failure. It
// keeps the id of each dead letter of one event distinct, so a redriven event
// that fails again is stored again rather than taken for the first copy.
const HeaderDeadLetterRedrives = "x-dead-letter-redrives"

// Redrive describes a dead-lettered event being delivered again to the handler
// that gave up on it (docs/dead-letters.md). Middleware reads it from the
// context: Dedupe lets the event through, the dead-letter middleware gives a
// new failure its own id, and a projection applies the event although its
// checkpoint has passed it.
type Redrive struct {
	// Generation is how many times the event has now been redriven (1 on
	// the first redrive).
	Generation int
	// Mark is what the handler records, in the same store operation as the
	// event's effect, to say that this dead letter has been redriven; Seq
	// is the value recorded under it.
	Mark string
	Seq  uint64
}

type redriveKey struct{}

// WithRedrive returns a context saying its message is a redrive.
func WithRedrive(ctx context.Context, r Redrive) context.Context {
	return context.WithValue(ctx, redriveKey{}, r)
}

// RedriveOf returns the redrive ctx carries, if it carries one.
func RedriveOf(ctx context.Context) (Redrive, bool) {
	r, ok := ctx.Value(redriveKey{}).(Redrive)
	return r, ok
}
