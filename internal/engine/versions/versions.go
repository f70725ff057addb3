// Package versions decides, when events are accepted into the outbox, what
// the event store will confirm once the processor has appended them: each
// keyed event's version, and whether an event ID is new to its stream.
//
// A 202 names the version of the event it accepted, and an If-Match append
// must see every version accepted before it, although the store has not
// stored those events yet. So versions are reserved here, per key, under a
// lock held only by appends to the same key: appends to different keys go to
// the outbox together (and share its fdatasync), appends to one key queue
// one behind the other, which is what makes the check linearizable per key.
// The table keeps only what the store does not know yet: a key's entry and
// an ID's reservation are dropped once the store has the event (Stored),
// and are read back from the store when next needed.
//
// Event IDs are reserved as well: an ID posted again while its first event
// is still in the outbox must answer with that event's key and version and
// take no version of its own, or the key's versions would have a gap once
// the store drops the repeat.
package versions

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"unicode/utf8"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// Store is what the table reads from the event store.
type Store interface {
	// KeyVersion is the version of the key's newest stored event, 0 when
	// it has none.
	KeyVersion(ctx context.Context, stream, key string) (uint64, error)
	// Lookup returns the stored event with that ID, if the stream has it.
	Lookup(ctx context.Context, stream, id string) (engine.Message, bool, error)
	// ReadKey returns up to limit stored events of the key with a version
	// above after, in version order.
	ReadKey(ctx context.Context, stream, key string, after uint64, limit int) ([]engine.Message, error)
}

// Request is one append: events of one stream, accepted all or none.
type Request struct {
	Stream string
	// Events have their ID and Key set; their Version is assigned here.
	Events []engine.Message
	// Generated marks events whose ID was generated for this request
	// (nil: none), so no earlier event can hold it and the store need not
	// be asked.
	Generated []bool
	// Expect is the condition on the version of the request's one key.
	Expect Expect
}

// ErrConditionNeedsOneKey refuses a condition on a request whose events do
// not all belong to one key.
var ErrConditionNeedsOneKey = errors.New("a version condition needs every event of the request to have the same key")

// Table holds the reservations. It is safe for concurrent use.
type Table struct {
	store Store
	seed  maphash.Seed
	keys  [shards]keyShard
	ids   [shards]idShard
}

const shards = 64

// New returns an empty table reading from store.
func New(store Store) *Table {
	t := &Table{store: store, seed: maphash.MakeSeed()}
	for i := range shards {
		t.keys[i].entries = make(map[streamKey]*keyEntry)
		t.ids[i].pending = make(map[uint64]int32)
		t.ids[i].claims = make(map[uint64]*idClaim)
	}
	return t
}

// streamKey names a key, or an ID, within a stream.
type streamKey struct{ stream, name string }

func (t *Table) shard(k streamKey) int {
	// The stream is left out of the hash: it is in the map key, and an ID or a
	// key is rarely used in two streams at once.
	return int(maphash.String(t.seed, k.name) % shards)
}

// Accept reserves the request's IDs and versions, checks its condition and
// calls enqueue once with the events that are new to the stream (versions
// set), holding every key of them until enqueue returns. An enqueue error
// gives everything back and is returned.
//
// It returns, for every event of the request in order, the event as
// accepted; an event whose ID the stream already has (stored, waiting in the
// outbox, or earlier in the same request) is returned as that earlier event
// (its ID, key and version) and is not enqueued. When every event is such a
// repeat, the condition is not checked: a retried append succeeds.
//
// A condition that does not hold is a *ConflictError and enqueues nothing.
func (t *Table) Accept(ctx context.Context, req Request, enqueue func([]engine.Message) error) ([]engine.Message, error) {
	if req.Expect != Any && !OneKey(req.Events) {
		return nil, ErrConditionNeedsOneKey
	}
	hs := t.idHashes(req.Stream, req.Events)
	c := &idClaim{}
	if err := t.claimIDs(ctx, c, req, hs); err != nil {
		return nil, err
	}
	defer t.release(c, hs)
	rep, err := t.findRepeats(ctx, req, hs)
	if err != nil {
		return nil, err
	}
	msgs := req.Events // the usual case: every event is new
	if rep != nil {
		if msgs = rep.freshEvents(req.Events); len(msgs) == 0 {
			return rep.views, nil
		}
	}
	held, err := t.lockKeys(ctx, req.Stream, msgs)
	if err != nil {
		return nil, err
	}
	defer t.unlockKeys(held)
	if err := t.checkAndNumber(req.Stream, req.Expect, msgs, held); err != nil {
		return nil, err
	}
	// The IDs count as pending before the enqueue: once it has returned,
	// the processor may store the events (and uncount them) at any moment.
	t.countPending(hs, rep, 1)
	if err := enqueue(msgs); err != nil {
		t.countPending(hs, rep, -1)
		return nil, err
	}
	t.accepted(req.Stream, msgs, held)
	if rep == nil {
		return msgs, nil
	}
	return rep.fill(msgs), nil
}

// OneKey reports whether every event has the same, non-empty key: what a
// version condition needs.
func OneKey(events []engine.Message) bool {
	if len(events) == 0 || events[0].Key == "" {
		return false
	}
	for _, e := range events[1:] {
		if e.Key != events[0].Key {
			return false
		}
	}
	return true
}

// repeats records the events of a request whose IDs the stream already has
// (views[i] is that earlier event) or an earlier event of the request has
// (views[i] is filled in by fill, once that one has its version).
type repeats struct {
	views  []engine.Message
	repeat []bool
	// sameAs maps a repeat within the request to its first event.
	sameAs map[int]int
	fresh  []int
}

func (r *repeats) freshEvents(events []engine.Message) []engine.Message {
	for i := range events {
		if !r.repeat[i] {
			r.fresh = append(r.fresh, i)
		}
	}
	msgs := make([]engine.Message, len(r.fresh))
	for k, i := range r.fresh {
		msgs[k] = events[i]
	}
	return msgs
}

// fill completes the views with the accepted events.
func (r *repeats) fill(accepted []engine.Message) []engine.Message {
	for k, i := range r.fresh {
		r.views[i] = accepted[k]
	}
	for i, j := range r.sameAs {
		r.views[i] = r.views[j]
	}
	return r.views
}

// findRepeats finds the request's events that are not new to the stream,
// or returns nil when every one is (without allocating for a single event).
//
// An ID accepted and still waiting for the store is waited for (the store
// then answers with the event): a retry may take as long as the processor
// takes to store what it repeats.
func (t *Table) findRepeats(ctx context.Context, req Request, hs []uint64) (*repeats, error) {
	var rep *repeats
	mark := func(i int, view engine.Message) {
		if rep == nil {
			n := len(req.Events)
			rep = &repeats{views: make([]engine.Message, n), repeat: make([]bool, n)}
		}
		rep.views[i], rep.repeat[i] = view, true
	}
	var first map[string]int
	if len(req.Events) > 1 {
		first = make(map[string]int, len(req.Events))
	}
	var lookups []int // the events whose IDs the store is asked about
	for i := range req.Events {
		ev := &req.Events[i]
		if first != nil {
			if j, ok := first[ev.ID]; ok {
				mark(i, engine.Message{})
				if rep.sameAs == nil {
					rep.sameAs = make(map[int]int)
				}
				rep.sameAs[i] = j
				continue
			}
			first[ev.ID] = i
		}
		if !generated(req, i) {
			lookups = append(lookups, i)
		}
	}
	for _, i := range lookups {
		if err := t.waitUntilStored(ctx, hs[i]); err != nil {
			return nil, err
		}
	}
	if err := t.lookUp(ctx, req, lookups, mark); err != nil {
		return nil, err
	}
	if rep != nil {
		// A repeat within the request of an event the stream has is
		// answered now: nothing may be left to append.
		for i, j := range rep.sameAs {
			if rep.repeat[j] {
				rep.views[i] = rep.views[j]
			}
		}
	}
	return rep, nil
}

// lookUp asks the store about the IDs of the events at indexes, in one call
// when it can take them together (a disk store then opens one read
// transaction, not one per event), and marks those it has.
func (t *Table) lookUp(ctx context.Context, req Request, indexes []int, mark func(int, engine.Message)) error {
	if len(indexes) == 0 {
		return nil
	}
	if many, ok := t.store.(ManyLookup); ok && len(indexes) > 1 {
		ids := make([]string, len(indexes))
		for k, i := range indexes {
			ids[k] = req.Events[i].ID
		}
		found, err := many.LookupMany(ctx, req.Stream, ids)
		if err != nil {
			return fmt.Errorf("look up %d events in stream %q: %w", len(ids), req.Stream, err)
		}
		for k, i := range indexes {
			if m, ok := found[ids[k]]; ok {
				mark(i, m)
			}
		}
		return nil
	}
	for _, i := range indexes {
		id := req.Events[i].ID
		stored, ok, err := t.store.Lookup(ctx, req.Stream, id)
		if err != nil {
			return fmt.Errorf("look up event %q in stream %q: %w", id, req.Stream, err)
		}
		if ok {
			mark(i, stored)
		}
	}
	return nil
}

// ManyLookup is implemented by stores that look up several IDs at once
// cheaper than one by one.
type ManyLookup interface {
	// LookupMany returns the stored events of the stream among ids, by ID.
	LookupMany(ctx context.Context, stream string, ids []string) (map[string]engine.Message, error)
}

func generated(req Request, i int) bool { return req.Generated != nil && req.Generated[i] }

// Stored tells the table that the store holds msgs: what it reserved for
// them is the store's to answer from now on.
func (t *Table) Stored(msgs []engine.Message) {
	for i := range msgs {
		m := &msgs[i]
		t.idStored(m)
		if m.Key != "" {
			t.keyStored(m)
		}
	}
}

// Restore records events that were accepted before a restart and are still
// waiting in the outbox. Call it for every such event, oldest first, before
// the first Accept.
func (t *Table) Restore(msgs []engine.Message) {
	for i := range msgs {
		m := &msgs[i]
		t.addPending(maphash.String(t.seed, m.ID)^maphash.String(t.seed, m.Stream), 1)
		if m.Key != "" {
			t.keyRestored(m)
		}
	}
}

// ValidateKey checks a key against the rules of docs/entities.md.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return errors.New("the key is empty")
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("the key is %d bytes long, longer than %d", len(key), MaxKeyBytes)
	case key == "." || key == "..":
		return fmt.Errorf("the key %q is reserved", key)
	case strings.Contains(key, "/"):
		return fmt.Errorf("the key %q holds a '/'", key)
	}
	if !utf8.ValidString(key) {
		return errors.New("the key is not valid UTF-8")
	}
	for i, r := range key {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return fmt.Errorf("the key holds the control character %U at byte %d", r, i)
		}
	}
	return nil
}

// MaxKeyBytes is the longest key.
const MaxKeyBytes = 256

// Reserved counts the keys and IDs the table holds for events the store has
// not confirmed (or for appends in flight).
func (t *Table) Reserved() (keys, ids int) {
	for i := range shards {
		t.keys[i].mu.Lock()
		keys += len(t.keys[i].entries)
		t.keys[i].mu.Unlock()
		t.ids[i].mu.Lock()
		ids += len(t.ids[i].pending) + len(t.ids[i].claims)
		t.ids[i].mu.Unlock()
	}
	return keys, ids
}
