package versions

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// idShard holds the reservations of the IDs that hash to it. IDs are kept
// as 64-bit hashes of stream and ID, in maps without pointers, so that a
// large backlog costs the garbage collector nothing to scan. A hash says
// "maybe": the store, once it has the event, answers exactly.
type idShard struct {
	mu sync.Mutex
	// pending counts accepted events not yet stored, by hash. An event is
	// counted before it is enqueued, so the processor's uncounting always
	// comes after.
	pending map[uint64]int32
	// claims holds the hashes of IDs that requests in flight bring.
	claims map[uint64]*idClaim
	// stored is closed (and replaced) when a pending count drops to zero
	// while someone waits for it; nil when nobody waits.
	stored chan struct{}
}

// idClaim is one request's hold on the IDs it brings.
type idClaim struct {
	mu   sync.Mutex
	done chan struct{} // made for the first waiter, closed on release
	over bool
}

// wait returns a channel closed once the claim is released.
func (c *idClaim) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.over {
			close(c.done)
		}
	}
	return c.done
}

// idHashes returns the hash of each event's ID within the stream.
func (t *Table) idHashes(stream string, events []engine.Message) []uint64 {
	s := maphash.String(t.seed, stream)
	hs := make([]uint64, len(events))
	for i := range events {
		hs[i] = maphash.String(t.seed, events[i].ID) ^ s
	}
	return hs
}

func (t *Table) idShardOf(h uint64) *idShard { return &t.ids[h%shards] }

// claimIDs claims the IDs of the request that the caller brought; generated
// ones cannot be held by anybody else. An ID claimed by another request in
// flight is waited for, holding nothing meanwhile, so two requests never
// wait for each other.
func (t *Table) claimIDs(ctx context.Context, c *idClaim, req Request, hs []uint64) error {
	for {
		busy := t.tryClaimAll(c, req, hs)
		if busy == nil {
			return nil
		}
		select {
		case <-busy.wait():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryClaimAll claims the IDs, or, when another request holds one, gives
// back what it claimed and returns that request's claim.
func (t *Table) tryClaimAll(c *idClaim, req Request, hs []uint64) *idClaim {
	for i, h := range hs {
		if generated(req, i) {
			continue
		}
		s := t.idShardOf(h)
		s.mu.Lock()
		other, ok := s.claims[h]
		if !ok {
			s.claims[h] = c
		}
		s.mu.Unlock()
		if ok && other != c { // c: the same ID twice in the request
			t.unclaim(c, hs[:i])
			return other
		}
	}
	return nil
}

// unclaim drops the claims c holds.
func (t *Table) unclaim(c *idClaim, hs []uint64) {
	for _, h := range hs {
		s := t.idShardOf(h)
		s.mu.Lock()
		if s.claims[h] == c {
			delete(s.claims, h)
		}
		s.mu.Unlock()
	}
}

// release ends the request's claim; requests waiting for it go on.
func (t *Table) release(c *idClaim, hs []uint64) {
	t.unclaim(c, hs)
	c.mu.Lock()
	c.over = true
	if c.done != nil {
		close(c.done)
	}
	c.mu.Unlock()
}

// waitUntilStored waits until no accepted event with the hash is waiting for
// the store: then the store knows whether the stream has the ID.
func (t *Table) waitUntilStored(ctx context.Context, h uint64) error {
	s := t.idShardOf(h)
	for {
		s.mu.Lock()
		if s.pending[h] <= 0 {
			s.mu.Unlock()
			return nil
		}
		if s.stored == nil {
			s.stored = make(chan struct{})
		}
		stored := s.stored
		s.mu.Unlock()
		select {
		case <-stored:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// countPending counts the request's new events (all of hs, or those rep
// found fresh) as accepted (+1), or takes them back (-1).
func (t *Table) countPending(hs []uint64, rep *repeats, delta int32) {
	if rep == nil {
		for _, h := range hs {
			t.addPending(h, delta)
		}
		return
	}
	for _, i := range rep.fresh {
		t.addPending(hs[i], delta)
	}
}

// addPending counts accepted (+1) and stored (-1) events. A count never
// goes below zero: the processor also stores events that were never
// accepted here (handler outputs, dead letters) and may store one twice
// (a retry after a failed mark), and those must not cancel out a pending
// event with the same hash.
func (t *Table) addPending(h uint64, delta int32) {
	s := t.idShardOf(h)
	s.mu.Lock()
	n := max(s.pending[h]+delta, 0)
	if n == 0 {
		delete(s.pending, h)
		if s.stored != nil {
			close(s.stored)
			s.stored = nil
		}
	} else {
		s.pending[h] = n
	}
	s.mu.Unlock()
}

// idStored uncounts a stored event.
func (t *Table) idStored(m *engine.Message) {
	t.addPending(maphash.String(t.seed, m.ID)^maphash.String(t.seed, m.Stream), -1)
}
