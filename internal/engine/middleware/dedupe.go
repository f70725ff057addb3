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

	// now is replaced by tests; nil means time.Now.
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
		c.now = time.Now
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
// calling next. An event is remembered only once next returns nil, so a
// failed one can be redelivered and tried again (unlike Watermill's
// deduplicator, see its issue #580).
//
// Each handler the middleware wraps gets its own memory, bounded by Window and
// MaxEntries, so two projections never skip each other's events. Two
// deliveries of one event running at the same moment both reach next; the
// router never runs one handler concurrently, so that does not happen there.
func Dedupe(cfg DedupeConfig) (engine.Middleware, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func(next engine.Handler) engine.Handler {
		seen := newSeenSet(cfg.Window, cfg.MaxEntries)
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			key := seen.keyOf(msg.Stream, msg.ID)
			// One clock read serves both steps: against a window of
			// minutes, dating the entry from the start of handling rather
			// than its end makes no difference worth a second read.
			now := cfg.now()
			if seen.contains(key, now) {
				return nil, engine.ErrSkip
			}
			out, err := next.Handle(ctx, msg)
			if err == nil {
				seen.add(key, now)
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

// add remembers key as handled at now.
func (s *seenSet) add(key dedupeKey, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	// Insert first and compare lengths: one map operation instead of a
	// lookup followed by an insert.
	before := len(s.keys)
	s.keys[key] = struct{}{}
	if len(s.keys) == before {
		return // already remembered; its first entry stands
	}
	if s.n == s.max {
		// Full (so the ring has max slots): the oldest entry's slot
		// becomes the newest's.
		delete(s.keys, s.ring[s.head].key)
		s.ring[s.head] = seenEntry{key: key, at: now.UnixNano()}
		s.head = s.next(s.head)
		return
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
