package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// ReadModels is the readmodel.Store of --storage=nats: documents and
// checkpoints in one JetStream stream that every manager replica shares
// (layout in readmodels_jetstream.go, docs/storage.md#nats).
//
// An Apply is one atomic batch publish: its keys' values, the list chunks
// it fills and the checkpoint, which JetStream stores all or none, and
// which no read interleaves with. The checkpoint message is the fence: the
// batch expects it at the revision this store last read or wrote, so a
// second writer of the projection (a replica that still believes it owns
// it) has its Apply refused with ErrFenced and nothing of it stored.
//
// Reads go to JetStream, never to a cache: a projection another replica
// writes reads the same here. Apply caches the values it needs to check
// and build a change (numbers, list tails), valid while its fence holds.
type ReadModels struct {
	nc     *nats.Conn
	stream jetstream.Stream
	l      layout
	// inflight bounds the batches open at once: the server keeps at most
	// 50 per stream (max_batch_inflight_per_stream) and refuses more.
	inflight chan struct{}
	closed   atomic.Bool

	mu          sync.Mutex
	projections map[string]*projection
}

var (
	_ readmodel.Store            = (*ReadModels)(nil)
	_ readmodel.CheckpointLister = (*ReadModels)(nil)
)

// ErrFenced is wrapped by the error of an Apply to a projection that
// another writer (another replica) has written since this store last read
// or wrote its checkpoint. The Apply stores nothing, and the store refuses
// the projection's Applies until Checkpoint reads it again: reading the
// checkpoint is how a writer takes a projection over.
var ErrFenced = errors.New("read model is written by another writer")

// errReadModelsClosed is returned by ReadModels after Close.
var errReadModelsClosed = errors.New("read model store is closed")

// maxInflightBatches leaves room under the server's 50 open batches per
// stream for another replica's writes.
const maxInflightBatches = 16

// NewReadModels opens the read models kept under c's prefix, creating their
// stream (<prefix>_RM, c's replicas) if it does not exist, and purges the
// keys of generations an earlier process dropped without purging them.
// Closing the store does not close c.
func NewReadModels(ctx context.Context, c *Conn) (*ReadModels, error) {
	l := newLayout(c.Options().Prefix)
	st, err := c.JS.CreateOrUpdateStream(ctx, l.streamConfig(c.Options().Replicas))
	if err != nil {
		return nil, fmt.Errorf("nats: read model stream %s: %w", l.stream, err)
	}
	if !st.CachedInfo().Config.AllowAtomicPublish {
		return nil, fmt.Errorf("nats: read model stream %s: the server does not take atomic batch publishes (nats-server 2.12 or later does)", l.stream)
	}
	s := &ReadModels{
		nc:          c.NC,
		stream:      st,
		l:           l,
		inflight:    make(chan struct{}, maxInflightBatches),
		projections: map[string]*projection{},
	}
	if err := s.sweep(ctx); err != nil {
		return nil, fmt.Errorf("nats: read model stream %s: %w", l.stream, err)
	}
	return s, nil
}

// projection is what this store knows of one projection as its writer.
// Its mutex serializes the store's Applies, Moves and Deletes of it.
type projection struct {
	mu sync.Mutex
	writer
}

// writer is the state of a projection's writer, guarded by projection.mu.
type writer struct {
	// known says that the fields below are the projection's state as of
	// its last read or write by this store.
	known   bool
	gen     string // "" while the projection has no document
	headRev uint64 // sequence of its head message; 0 when there is none
	cpRev   uint64 // sequence of its checkpoint message
	cp      readmodel.Checkpoint
	// values caches keys' values in gen as of cpRev; cacheBytes is their
	// size, bounded by maxCacheBytes.
	values     map[string]*value
	cacheBytes int
	// fenced refuses Applies: another writer wrote the projection.
	fenced error
	// doubt is an Apply whose commit went unanswered, to settle first.
	doubt *doubt
}

// maxCacheBytes bounds a projection's cache of values.
const maxCacheBytes = 4 << 20

// state is a projection as read from the stream.
type state struct {
	gen     string
	headRev uint64
	cpRev   uint64
	cp      readmodel.Checkpoint
	cpData  []byte
}

// adopt makes st what the store knows of the projection, forgetting its
// cache, fence and doubt.
func (p *projection) adopt(st state) {
	p.writer = writer{known: true, gen: st.gen, headRev: st.headRev, cpRev: st.cpRev, cp: st.cp}
}

// forget drops what the store knows: the next Apply reads it again.
func (p *projection) forget() { p.writer = writer{} }

// rev is the newest sequence the store knows of the projection.
func (p *projection) rev() uint64 { return max(p.headRev, p.cpRev) }

// cache keeps v as key's value, dropping others when the cache is full.
func (p *projection) cache(key string, v *value) {
	if p.values == nil {
		p.values = map[string]*value{}
	}
	if old := p.values[key]; old != nil {
		p.cacheBytes -= old.size()
	}
	p.values[key] = v
	p.cacheBytes += v.size()
	for k, old := range p.values { // in random order
		if p.cacheBytes <= maxCacheBytes {
			break
		}
		if k != key {
			delete(p.values, k)
			p.cacheBytes -= old.size()
		}
	}
}

func (s *ReadModels) projection(name string) *projection {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projections[name]
	if p == nil {
		p = &projection{}
		s.projections[name] = p
	}
	return p
}

// usable says why a call cannot run: its context ended or the store closed.
func (s *ReadModels) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return errReadModelsClosed
	}
	return nil
}

// readState reads a projection's head, then its checkpoint, from the
// leader; a generation dropped between the two reads means a Move or
// Delete ran between them, and the head is read again.
func (s *ReadModels) readState(ctx context.Context, name string) (state, error) {
	for attempt := 0; ; attempt++ {
		h, err := s.last(ctx, s.l.head(name))
		if err != nil || h == nil {
			return state{}, err
		}
		if len(h.data) == 0 {
			return state{headRev: h.seq}, nil // deleted
		}
		gen := string(h.data)
		c, err := s.last(ctx, s.l.checkpoint(gen))
		if err != nil {
			return state{}, err
		}
		if c != nil && len(c.data) > 0 {
			cp := readmodel.Checkpoint{}
			if err := json.Unmarshal(c.data, &cp); err != nil {
				return state{}, fmt.Errorf("checkpoint: %w: %w", errCorrupt, err)
			}
			return state{gen: gen, headRev: h.seq, cpRev: c.seq, cp: cp, cpData: c.data}, nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return state{}, fmt.Errorf("read model %q: %w", name, err)
		}
	}
}

// Apply checks every change against the document, then writes the values
// of the keys they change, the list chunks they fill and the merged
// checkpoint as one atomic batch that expects the checkpoint at the
// revision this store last read or wrote (ErrFenced otherwise). A type
// clash, a value that does not encode as JSON, or more messages than one
// batch holds (maxBatch) is refused before anything is sent.
func (s *ReadModels) Apply(ctx context.Context, name string, changes []readmodel.Change, cp readmodel.Checkpoint) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	p := s.projection(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := s.apply(ctx, name, p, changes, cp); err != nil {
		return fmt.Errorf("apply to read model %q: %w", name, err)
	}
	return nil
}

func (s *ReadModels) apply(ctx context.Context, name string, p *projection, changes []readmodel.Change, cp readmodel.Checkpoint) error {
	if p.fenced != nil {
		return p.fenced
	}
	if p.doubt != nil {
		applied, err := s.settle(ctx, p, changes, cp)
		if err != nil || applied {
			return err
		}
	}
	if !p.known {
		st, err := s.readState(ctx, name)
		if err != nil {
			return err
		}
		p.adopt(st)
	}
	if err := s.loadValues(ctx, p, changes); err != nil {
		return err
	}
	err := readmodel.Validate(changes, func(i int) (readmodel.Kind, error) {
		if v := p.values[changes[i].Key]; v != nil {
			return v.kind(), nil
		}
		return readmodel.KindMissing, nil // a set, which fits anything: not loaded
	})
	if err != nil {
		return err
	}
	b, err := s.build(name, p, changes, cp)
	if err != nil {
		return err
	}
	seq, err := s.commit(ctx, b.id, b.msgs)
	switch {
	case err == nil:
		p.committed(b, seq)
		return nil
	case errors.Is(err, errConflict):
		p.forget()
		p.fenced = fmt.Errorf("%w: %w since this store last read or wrote its checkpoint; "+
			"it stores nothing of this projection until it reads its Checkpoint again", ErrFenced, err)
		return p.fenced
	case errors.Is(err, errInDoubt):
		d := &doubt{batch: b, ids: map[string]bool{b.id: true}, changes: slices.Clone(changes), cp: maps.Clone(cp)}
		if b.newGen {
			d.subject, d.expect = s.l.head(name), p.headRev // a rival marks it deleted, as it is
		} else if d.data, err = json.Marshal(p.cp); err == nil {
			d.subject, d.expect = s.l.checkpoint(p.gen), p.cpRev // a rival writes the checkpoint it holds
		} else {
			return err
		}
		p.doubt = d
		return fmt.Errorf("%w; the next Apply finds out whether it was stored", err)
	default:
		return err
	}
}

// loadValues caches the values that changes need to be checked and
// applied: of each key whose first change is not a set.
func (s *ReadModels) loadValues(ctx context.Context, p *projection, changes []readmodel.Change) error {
	if p.gen == "" {
		return nil // a new document: every key is missing
	}
	var seen map[string]bool
	for _, c := range changes {
		if seen[c.Key] {
			continue
		}
		if len(changes) > 1 {
			if seen == nil {
				seen = make(map[string]bool, len(changes))
			}
			seen[c.Key] = true
		}
		if c.Op == readmodel.OpSet || p.values[c.Key] != nil {
			continue
		}
		m, err := s.last(ctx, s.l.value(p.gen, c.Key))
		if err != nil {
			return err
		}
		v := value{}
		if m != nil {
			if v, err = decodeValue(m.data); err != nil {
				return fmt.Errorf("key %q: %w", c.Key, err)
			}
		}
		p.cache(c.Key, v.forCache())
	}
	return nil
}

// batch is one Apply's messages and the state they leave.
type batch struct {
	id     string
	msgs   []outMsg
	gen    string
	newGen bool
	work   map[string]*value // changed keys' values after the batch
	cp     readmodel.Checkpoint
	cpData []byte
}

// maxSubject keeps a publish's protocol line under the server's 4096
// bytes (max_control_line), past which it drops the connection.
const maxSubject = 3000

// build turns changes into a batch: the value of each changed key once, as
// the last of its changes leaves it, a message per list chunk filled, the
// head for a new document, and the checkpoint last.
func (s *ReadModels) build(name string, p *projection, changes []readmodel.Change, cp readmodel.Checkpoint) (*batch, error) {
	b := &batch{id: newGen(), gen: p.gen, work: make(map[string]*value, len(changes))}
	if b.gen == "" {
		b.gen, b.newGen = newGen(), true
		b.msgs = append(b.msgs, outMsg{subject: s.l.genEntry(b.gen), data: []byte(name)})
	}
	var order []string
	work := func(key string) *value {
		if w := b.work[key]; w != nil {
			return w
		}
		w := &value{}
		if c := p.values[key]; c != nil {
			*w = *c
		}
		b.work[key] = w
		order = append(order, key)
		return w
	}
	for i, c := range changes {
		flush := func(v *value) {
			b.msgs = append(b.msgs, outMsg{subject: s.l.chunk(b.gen, c.Key, v.chunks), data: v.tail})
		}
		switch c.Op {
		case readmodel.OpSet:
			v, err := setValue(c.Value, flush)
			if err != nil {
				return nil, fmt.Errorf("change %d: set key %q: %w", i, c.Key, err)
			}
			*work(c.Key) = v
		case readmodel.OpAppend:
			item, err := appendJSON(nil, c.Value)
			if err != nil {
				return nil, fmt.Errorf("change %d: append to key %q: %w", i, c.Key, err)
			}
			work(c.Key).push(item, flush)
		case readmodel.OpIncrement:
			work(c.Key).increment(c.Delta)
		}
	}
	for _, key := range order {
		b.msgs = append(b.msgs, outMsg{subject: s.l.value(b.gen, key), data: b.work[key].encode()})
	}
	if b.newGen {
		b.msgs = append(b.msgs, outMsg{subject: s.l.head(name), data: []byte(b.gen), expect: p.headRev, expectSet: true})
	}
	b.cp = make(readmodel.Checkpoint, len(p.cp)+len(cp))
	maps.Copy(b.cp, p.cp)
	maps.Copy(b.cp, cp)
	var err error
	if b.cpData, err = json.Marshal(b.cp); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	b.msgs = append(b.msgs, outMsg{subject: s.l.checkpoint(b.gen), data: b.cpData, expect: p.cpRev, expectSet: true})
	if len(b.msgs) > maxBatch {
		return nil, fmt.Errorf("%d changes make %d messages, more than the %d one atomic JetStream batch holds: %w",
			len(changes), len(b.msgs), maxBatch, ErrApplyTooLarge)
	}
	for _, m := range b.msgs {
		if len(m.subject) > maxSubject {
			return nil, fmt.Errorf("subject %.40s... of %d bytes: a key or projection name too long for a NATS subject (at most %d bytes encoded)",
				m.subject, len(m.subject), maxSubject)
		}
	}
	return b, nil
}

// ErrApplyTooLarge is wrapped by the error of an Apply that needs more
// messages than one atomic JetStream batch holds (maxBatch: one per changed
// key, one per list chunk it fills, one for the checkpoint). Nothing of it
// is stored.
var ErrApplyTooLarge = errors.New("apply too large for one atomic batch")

// committed records what b's commit, ending at sequence seq, leaves.
func (p *projection) committed(b *batch, seq uint64) {
	if b.newGen {
		p.gen, p.headRev = b.gen, seq-1 // the head comes just before the checkpoint
		p.values, p.cacheBytes = nil, 0
	}
	p.cpRev, p.cp = seq, b.cp
	for key, v := range b.work {
		p.cache(key, v.forCache())
	}
}

// doubt is an Apply whose commit went unanswered: it may have been stored,
// or be stored later (a message the client buffered while reconnecting).
type doubt struct {
	batch *batch
	// subject is where the batch and its rivals expect revision expect:
	// the checkpoint, or the head of a new document. data is a rival's
	// message, which changes nothing there.
	subject string
	expect  uint64
	data    []byte
	// ids are the batch and the rivals sent since, exactly one of which
	// can be stored, since all expect the same revision.
	ids     map[string]bool
	changes []readmodel.Change
	cp      readmodel.Checkpoint
}

// settle finds out whether the doubtful Apply was stored, sending a rival
// that expects the same revision if nothing was yet: once the rival is
// stored, the Apply never can be. It reports applied when the Apply was
// stored and is the one the caller applies again (its retry).
func (s *ReadModels) settle(ctx context.Context, p *projection, changes []readmodel.Change, cp readmodel.Checkpoint) (applied bool, err error) {
	d := p.doubt
	for {
		m, err := s.last(ctx, d.subject)
		if err != nil {
			return false, err
		}
		var id string
		if m != nil {
			id = m.header.Get(headerBatchID)
		}
		switch {
		case m == nil && d.expect == 0 || m != nil && m.seq == d.expect:
			rival := newGen()
			d.ids[rival] = true
			seq, err := s.commit(ctx, rival, []outMsg{{subject: d.subject, data: d.data, expect: d.expect, expectSet: true}})
			switch {
			case errors.Is(err, errConflict):
				continue // the Apply or an earlier rival got there first
			case err != nil:
				return false, err
			}
			if d.batch.newGen {
				p.headRev = seq
			} else {
				p.cpRev = seq
			}
			p.doubt = nil
			return false, nil
		case id == d.batch.id:
			last := m.seq // the checkpoint
			if d.batch.newGen {
				last++ // the head, just before it
			}
			p.committed(d.batch, last)
			p.doubt = nil
			return reflect.DeepEqual(changes, d.changes) && maps.Equal(cp, d.cp), nil
		case d.ids[id]:
			if d.batch.newGen {
				p.headRev = m.seq
			} else {
				p.cpRev = m.seq
			}
			p.doubt = nil
			return false, nil
		default:
			p.forget()
			p.fenced = fmt.Errorf("%w: %s changed while an Apply was in doubt; "+
				"it stores nothing of this projection until it reads its Checkpoint again", ErrFenced, d.subject)
			return false, p.fenced
		}
	}
}

// Checkpoint reads the projection's checkpoint from JetStream. It is also
// how a writer takes a projection over: the revision read is what the
// store's next Apply expects, unless the store itself wrote a newer one.
func (s *ReadModels) Checkpoint(ctx context.Context, name string) (readmodel.Checkpoint, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	st, err := s.readState(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("checkpoint of read model %q: %w", name, err)
	}
	p := s.projection(name)
	p.mu.Lock()
	if !p.known || p.fenced != nil || p.doubt != nil || max(st.headRev, st.cpRev) > p.rev() {
		p.adopt(st)
	}
	p.mu.Unlock()
	if st.cp == nil {
		return readmodel.Checkpoint{}, nil
	}
	return st.cp, nil
}

// Checkpoints returns every stored projection's checkpoint.
func (s *ReadModels) Checkpoints(ctx context.Context) (map[string]readmodel.Checkpoint, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	var names []string
	err := s.scanLeader(ctx, s.l.heads(), func(m *storedMsg) error {
		if len(m.data) == 0 {
			return nil // deleted
		}
		name, ok := s.l.headName(m.subject)
		if !ok {
			return fmt.Errorf("head %s: %w", m.subject, errCorrupt)
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	out := make(map[string]readmodel.Checkpoint, len(names))
	for _, name := range names {
		st, err := s.readState(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("list checkpoints: %w", err)
		}
		if st.gen != "" { // else deleted since
			out[name] = st.cp
		}
	}
	return out, nil
}

// Delete marks the projection's head and checkpoint deleted in one batch,
// then purges its generation. Deleting an unknown projection is not an
// error.
func (s *ReadModels) Delete(ctx context.Context, name string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	p := s.projection(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forget()
	if err := s.delete(ctx, name); err != nil {
		return fmt.Errorf("delete read model %q: %w", name, err)
	}
	return nil
}

func (s *ReadModels) delete(ctx context.Context, name string) error {
	for attempt := 0; ; attempt++ {
		st, err := s.readState(ctx, name)
		if err != nil {
			return err
		}
		if st.gen == "" {
			if st.headRev > 0 { // a deletion whose purge did not run
				return s.purge(ctx, s.l.head(name), st.headRev+1)
			}
			return nil
		}
		seq, err := s.commit(ctx, newGen(), []outMsg{
			{subject: s.l.head(name), expect: st.headRev, expectSet: true},
			{subject: s.l.checkpoint(st.gen), expect: st.cpRev, expectSet: true},
		})
		if errors.Is(err, errConflict) {
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		return errors.Join(s.dropGen(ctx, st.gen), s.purge(ctx, s.l.head(name), seq))
	}
}

// dropGen purges a generation no head names any more.
func (s *ReadModels) dropGen(ctx context.Context, gen string) error {
	if err := s.purge(ctx, s.l.gen(gen), 0); err != nil {
		return err
	}
	return s.purge(ctx, s.l.genEntry(gen), 0)
}

// Move points to's head at from's generation and marks from's head deleted
// in one batch, which also rewrites from's checkpoint (fencing a writer of
// from) and marks to's old checkpoint deleted (fencing a writer of to);
// then it purges to's old generation. The cost does not grow with the
// document.
func (s *ReadModels) Move(ctx context.Context, from, to string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	pf, pt := s.projection(from), s.projection(to)
	if from == to {
		pf.mu.Lock()
		defer pf.mu.Unlock()
	} else {
		first, second := pf, pt
		if to < from {
			first, second = pt, pf
		}
		first.mu.Lock()
		defer first.mu.Unlock()
		second.mu.Lock()
		defer second.mu.Unlock()
	}
	if err := s.move(ctx, from, to, pf, pt); err != nil {
		return fmt.Errorf("move read model %q to %q: %w", from, to, err)
	}
	return nil
}

func (s *ReadModels) move(ctx context.Context, from, to string, pf, pt *projection) error {
	for attempt := 0; ; attempt++ {
		f, err := s.readState(ctx, from)
		if err != nil {
			return err
		}
		if f.gen == "" {
			return readmodel.ErrNotFound
		}
		if from == to {
			return nil
		}
		t, err := s.readState(ctx, to)
		if err != nil {
			return err
		}
		msgs := []outMsg{
			{subject: s.l.head(to), data: []byte(f.gen), expect: t.headRev, expectSet: true},
			{subject: s.l.head(from), expect: f.headRev, expectSet: true},
		}
		if t.gen != "" {
			msgs = append(msgs, outMsg{subject: s.l.checkpoint(t.gen), expect: t.cpRev, expectSet: true})
		}
		msgs = append(msgs, outMsg{subject: s.l.checkpoint(f.gen), data: f.cpData, expect: f.cpRev, expectSet: true})
		seq, err := s.commit(ctx, newGen(), msgs)
		if errors.Is(err, errConflict) {
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
			continue
		}
		pf.forget()
		pt.forget()
		if err != nil {
			return err
		}
		first := seq - uint64(len(msgs)) + 1
		pt.adopt(state{gen: f.gen, headRev: first, cpRev: seq, cp: f.cp})
		var purged error
		if t.gen != "" {
			purged = s.dropGen(ctx, t.gen)
		}
		return errors.Join(purged, s.purge(ctx, s.l.head(from), first+2))
	}
}

// maxAttempts bounds the reads of something that keeps changing meanwhile.
const maxAttempts = 20

// backoff waits before attempt+1 of a read or write that found its
// subject changed meanwhile, and gives up after maxAttempts.
func backoff(ctx context.Context, attempt int) error {
	if attempt+1 >= maxAttempts {
		return fmt.Errorf("it kept changing while read, %d times", maxAttempts)
	}
	t := time.NewTimer(time.Duration(1<<min(attempt, 6)) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close makes later calls return an error; closing again is a no-op. The
// Conn stays open: its owner closes it.
func (s *ReadModels) Close() error {
	s.closed.Store(true)
	return nil
}

// sweep purges what a process that stopped between a Delete's or Move's
// batch and its purges left: generations no head names, and deleted
// heads. Generations are listed before heads, so one created meanwhile is
// not listed, and a listed one that no head names is unreachable for
// good: a head only ever names a new generation or one another head named
// until the same batch.
func (s *ReadModels) sweep(ctx context.Context) error {
	gens := map[string]bool{}
	genPrefix := s.l.genEntry("")
	err := s.scanLeader(ctx, s.l.gens(), func(m *storedMsg) error {
		gens[m.subject[len(genPrefix):]] = true
		return nil
	})
	if err != nil {
		return err
	}
	var deleted []*storedMsg
	err = s.scanLeader(ctx, s.l.heads(), func(m *storedMsg) error {
		if len(m.data) == 0 {
			deleted = append(deleted, m)
		} else {
			delete(gens, string(m.data))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for gen := range gens {
		if err := s.dropGen(ctx, gen); err != nil {
			return err
		}
	}
	for _, m := range deleted {
		if err := s.purge(ctx, m.subject, m.seq+1); err != nil {
			return err
		}
	}
	return nil
}
