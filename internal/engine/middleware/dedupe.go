package middleware

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// DedupeConfig configures Dedupe. Zero fields take the defaults noted on each.
type DedupeConfig struct {
	// Window is how long a handled event is remembered. Default 10m.
	Window time.Duration
	// MaxEntries bounds how many events are remembered; beyond it the oldest
	// is forgotten first. Default 10000: about 400 KB per handler, which
	// stays in the CPU cache (at 100000 the lookups miss it and Dedupe
	// costs more than the rest of the default chain). Redelivery after a
	// restart is caught by the projection's checkpoint, not by this memory,
	// so the bound only needs to cover duplicates that arrive close together.
	MaxEntries int

	// now is replaced by tests; nil means a monotonic clock.
	now func() time.Time
}

func (c *DedupeConfig) setDefaults() {
	if c.Window == 0 {
		c.Window = 10 * time.Minute
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = 10_000
	}
	if c.now == nil {
		c.now = monotonicClock()
	}
}

// Validate reports every setting that is out of range.
func (c DedupeConfig) Validate() error {
	if c.Window < 0 {
		return fmt.Errorf("dedupe: window must not be negative, got %s", c.Window)
	}
	if c.MaxEntries < 0 {
		return fmt.Errorf("dedupe: maxEntries must not be negative, got %d", c.MaxEntries)
	}
	return nil
}

// Dedupe skips a message whose event (stream and id) the next handler already
// handled successfully within the window: it returns engine.ErrSkip without
// calling next. An event whose handling fails is forgotten, so it can be
// redelivered and tried again (unlike Watermill's deduplicator, see its issue
// #580).
//
// Each handler the middleware wraps gets its own memory, bounded by Window and
// MaxEntries, so two projections never skip each other's events. A redrive
// (engine.RedriveOf) goes through untouched: it delivers an event again on
// purpose. Of two
// deliveries of one event running at the same moment, the second is skipped
// while the first is in flight; the router never runs one handler
// concurrently, so that does not happen there.
func Dedupe(cfg DedupeConfig) (engine.Middleware, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func(next engine.Handler) engine.Handler {
		seen := newSeenSet(cfg.Window, cfg.MaxEntries)
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			if _, ok := engine.RedriveOf(ctx); ok {
				// Asked for again on purpose: not a duplicate.
				return next.Handle(ctx, msg)
			}
			key := seen.keyOf(msg.Stream, msg.ID)
			// One clock read serves both steps: against a window of
			// minutes, dating the entry from the start of handling rather
			// than its end makes no difference worth a second read.
			now := cfg.now()
			// Claiming before next is one lock and one map insert where
			// a lookup before and an insert after would take two of each;
			// a failure releases the claim so the event can be redelivered.
			if !seen.claim(key, now) {
				return nil, engine.ErrSkip
			}
			out, err := next.Handle(ctx, msg)
			if err != nil {
				seen.release(key)
			}
			return out, err
		})
	}, nil
}

// dedupeKey identifies an event by a 128-bit hash of its stream and id.
// Hashes keep the map small and cache-friendly (and hold no strings alive for
// the window); at 128 bits two events colliding within one window is far less
// likely than a memory fault.
type dedupeKey [2]uint64

// seenEntry is one remembered event and when it was handled.
type seenEntry struct {
	key dedupeKey
	// at is Unix nanoseconds: a time.Time holds a pointer, which would make
	// the garbage collector scan the whole ring and put a write barrier on
	// every store into it.
	at int64
}

// seenSet remembers keys for a window, at most max of them. The ring holds
// them oldest first, so expiry and eviction pop from its head; every key in
// the map is in the ring exactly once. Each operation is amortised O(1).
type seenSet struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	seeds  [2]maphash.Seed
	keys   map[dedupeKey]struct{}
	ring   []seenEntry // grows on demand up to max, then wraps
	head   int         // index of the oldest entry
	n      int         // entries in the ring
}

func newSeenSet(window time.Duration, maxEntries int) *seenSet {
	return &seenSet{
		window: window, max: maxEntries, keys: make(map[dedupeKey]struct{}),
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
	}
}

// keyOf hashes stream and id with two independent seeds.
func (s *seenSet) keyOf(stream, id string) dedupeKey {
	// maphash.Comparable hashes the pair with the runtime's string hash,
	// several times faster than streaming both strings through a Hash.
	ev := eventRef{stream: stream, id: id}
	return dedupeKey{maphash.Comparable(s.seeds[0], ev), maphash.Comparable(s.seeds[1], ev)}
}

// eventRef is what identifies an event to Dedupe.
type eventRef struct{ stream, id string }

// contains reports whether key was added within the window before now.
func (s *seenSet) contains(key dedupeKey, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	_, ok := s.keys[key]
	return ok
}

// claim remembers key as handled at now and reports true, or reports false
// when key is already remembered.
func (s *seenSet) claim(key dedupeKey, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	// Insert first and compare lengths: one map operation instead of a
	// lookup followed by an insert.
	before := len(s.keys)
	s.keys[key] = struct{}{}
	if len(s.keys) == before {
		return false // already remembered; its first entry stands
	}
	if s.n == s.max {
		// Full (so the ring has max slots): the oldest entry's slot
		// becomes the newest's.
		delete(s.keys, s.ring[s.head].key)
		s.ring[s.head] = seenEntry{key: key, at: now.UnixNano()}
		s.head = s.next(s.head)
		return true
	}
	if s.n == len(s.ring) {
		s.grow()
	}
	tail := s.head + s.n
	if tail >= len(s.ring) {
		tail -= len(s.ring)
	}
	s.ring[tail] = seenEntry{key: key, at: now.UnixNano()}
	s.n++
	return true
}

// release forgets a claimed key whose handling failed. Its ring entry stays
// until it expires; should the key be claimed again meanwhile, that old entry
// forgets the new claim early when it expires, which can let a duplicate
// through but never skips an event that was not handled.
func (s *seenSet) release(key dedupeKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, key)
}

// monotonicClock returns a clock that reads only the monotonic time (one
// system clock read instead of time.Now's two); its wall time is derived
// from the moment it was made, which is all a dedupe window needs.
func monotonicClock() func() time.Time {
	base := time.Now()
	return func() time.Time { return base.Add(time.Since(base)) }
}

// expire forgets the entries older than the window.
func (s *seenSet) expire(now time.Time) {
	for s.n > 0 && time.Duration(now.UnixNano()-s.ring[s.head].at) >= s.window {
		s.pop()
	}
}

// pop forgets the oldest entry.
func (s *seenSet) pop() {
	delete(s.keys, s.ring[s.head].key)
	s.head = s.next(s.head)
	s.n--
}

// next is the ring index after i.
func (s *seenSet) next(i int) int {
	if i++; i == len(s.ring) {
		return 0
	}
	return i
}

// grow doubles the full ring, up to max, moving the oldest entry to index 0.
// Growing on demand keeps an idle handler from holding max slots.
func (s *seenSet) grow() {
	ring := make([]seenEntry, min(max(2*len(s.ring), 64), s.max))
	n := copy(ring, s.ring[s.head:])
	copy(ring[n:], s.ring[:s.head])
	s.ring, s.head = ring, 0
}
