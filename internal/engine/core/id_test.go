package core

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestNewIDsAreDistinctUUIDv7sOfTheGivenTime(t *testing.T) {
	now := time.Date(2026, 11, 25, 22, 30, 0, 123_456_789, time.UTC)
	const n = 1000
	ids := newIDs(now, n)
	seen := make(map[string]bool, n)
	for range n {
		var id string
		id, ids = ids.next()
		u, err := uuid.Parse(id)
		if err != nil {
			t.Fatalf("uuid.Parse(%q): %v", id, err)
		}
		if u.String() != id {
			t.Fatalf("id %q is not in canonical form: got %q back", id, u.String())
		}
		if u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("id %q: got version %d variant %v, want 7 and RFC4122", id, u.Version(), u.Variant())
		}
		sec, nsec := u.Time().UnixTime()
		if got := time.Unix(sec, nsec); !got.Equal(now.Truncate(time.Millisecond)) {
			t.Fatalf("id %q: got time %v, want %v", id, got, now.Truncate(time.Millisecond))
		}
		if seen[id] {
			t.Fatalf("id %q was generated twice", id)
		}
		seen[id] = true
	}
	if len(ids) != 0 {
		t.Fatalf("batch has %d bytes left after %d ids, want 0", len(ids), n)
	}
}
