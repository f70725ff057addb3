package versions

import (
	"context"
	"sync"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// idShard holds the reservations of the IDs that hash to it.
type idShard struct {
	mu  sync.Mutex
	ids map[streamKey]idState
}

// idState is an ID's reservation: claimed by a request still deciding, or
// accepted (with the event's key and version) and not yet stored.
type idState struct {
	claimedBy *idClaim
	// storedEarly says the store confirmed the event before the request
	// that claimed it recorded it as accepted.
	storedEarly bool
	key         string
	version     uint64
}

// idClaim is one request's hold on the IDs it brings.
type idClaim struct {
	stream string
	// prior holds the IDs that were already accepted, as their events.
	prior map[string]engine.Message

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

// claimIDs claims every ID of the request. An ID claimed by another request
// in flight is waited for, holding nothing meanwhile, so two requests never
// wait for each other. Generated IDs are claimed too, although nobody else
// can hold them: the claim is what lets idStored, should the processor store
// the event before acceptedIDs runs, say so.
func (t *Table) claimIDs(ctx context.Context, c *idClaim, events []engine.Message) error {
	for {
		busy := t.tryClaimAll(c, events)
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

// tryClaimAll claims the events' IDs, or, when another request holds one,
// gives back what it claimed and returns that request's claim.
func (t *Table) tryClaimAll(c *idClaim, events []engine.Message) *idClaim {
	for i := range events {
		id := events[i].ID
		k := streamKey{c.stream, id}
		s := &t.ids[t.shard(k)]
		s.mu.Lock()
		st, ok := s.ids[k]
		switch {
		case !ok:
			s.ids[k] = idState{claimedBy: c}
		case st.claimedBy == c: // the same ID twice in the request
		case st.claimedBy != nil:
			s.mu.Unlock()
			t.unclaim(c, events[:i])
			return st.claimedBy
		default:
			if c.prior == nil {
				c.prior = make(map[string]engine.Message)
			}
			c.prior[id] = engine.Message{ID: id, Stream: c.stream, Key: st.key, Version: st.version}
		}
		s.mu.Unlock()
	}
	return nil
}

// unclaim drops the claims c holds on the events' IDs.
func (t *Table) unclaim(c *idClaim, events []engine.Message) {
	for i := range events {
		k := streamKey{c.stream, events[i].ID}
		s := &t.ids[t.shard(k)]
		s.mu.Lock()
		if st, ok := s.ids[k]; ok && st.claimedBy == c {
			delete(s.ids, k)
		}
		s.mu.Unlock()
	}
	clear(c.prior)
}

// release ends the request's claim: IDs it accepted are recorded already
// (acceptedIDs); the others are given back. Requests waiting for it go on.
func (t *Table) release(c *idClaim, events []engine.Message) {
	t.unclaim(c, events)
	c.mu.Lock()
	c.over = true
	if c.done != nil {
		close(c.done)
	}
	c.mu.Unlock()
}

// acceptedIDs records the events' IDs as accepted, replacing the claims.
func (t *Table) acceptedIDs(stream string, msgs []engine.Message) {
	for i := range msgs {
		m := &msgs[i]
		k := streamKey{stream, m.ID}
		s := &t.ids[t.shard(k)]
		s.mu.Lock()
		if st, ok := s.ids[k]; ok && st.storedEarly {
			delete(s.ids, k)
		} else {
			s.ids[k] = idState{key: m.Key, version: m.Version}
		}
		s.mu.Unlock()
	}
}

// idStored drops an ID's reservation once the store has its event.
func (t *Table) idStored(m *engine.Message) {
	k := streamKey{m.Stream, m.ID}
	s := &t.ids[t.shard(k)]
	s.mu.Lock()
	if st, ok := s.ids[k]; ok {
		if st.claimedBy == nil {
			delete(s.ids, k)
		} else {
			st.storedEarly = true
			s.ids[k] = st
		}
	}
	s.mu.Unlock()
}
