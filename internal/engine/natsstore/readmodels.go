package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	engbackoff "github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// ReadModels is the readmodel.Store of --storage=nats: documents and
// checkpoints in one JetStream stream that every manager replica shares
// (layout in readmodels_jetstream.go, docs/storage.md#nats).
//
// A commit is one atomic batch publish: the values of the keys it changes,
// the list chunks it fills and the checkpoint, which JetStream stores all
// or none, and which no read interleaves with. The checkpoint message is
// the fence: the batch expects it at the revision this store last read or
// wrote, so a second writer of a projection (a replica that still believes
// it owns it) has its batch refused, nothing of it stored, and ErrFenced
// from its next Apply.
//
// Apply checks and stages, and returns; each projection's staged Applies
// are committed in the background, those staged while a batch is in flight
// together in the next (as the disk store's writeBehind does): a batch
// costs a round trip and, on a single node, a few fsyncs, whatever it
// holds. Every batch holds whole Applies, so a reader or a restart sees
// each Apply's changes and checkpoint both or neither. Reads go to
// JetStream, never to a cache, so they see what another replica wrote;
// through this store they first wait for what it staged before them.
type ReadModels struct {
	nc     *nats.Conn
	stream jetstream.Stream
	// gather is how long a batch stays open for more Applies before it is
	// committed: on a single-replica stream JetStream stages every atomic
	// batch in files of its own, created and fsynced whatever the batch
	// holds (about 2 ms of server CPU), so fewer, fuller batches; a
	// replicated stream stages them in memory and commits at once. Reads
	// on this store wait for it, as on disk storage for its batch delay.
	gather time.Duration
	l      layout
	// inflight bounds the batches open at once: the server keeps at most
	// 50 per stream (max_batch_inflight_per_stream) and refuses more.
	inflight chan struct{}
	closed   atomic.Bool
	// committers are the goroutines committing staged Applies.
	committers sync.WaitGroup
	// loseAnswer, in tests, pretends the answer to a stored batch was lost.
	loseAnswer func() bool
	// observe, when set, is told of each batch stored (Options).
	observe func(messages int, took time.Duration)

	mu          sync.Mutex
	projections map[string]*projection
	failed      error // the first Applies lost for good
}

var (
	_ readmodel.Store            = (*ReadModels)(nil)
	_ readmodel.CheckpointLister = (*ReadModels)(nil)
)

// ErrFenced is wrapped by the error of an Apply to a projection that
// another writer (another replica) has written since this store last read
// or wrote its checkpoint. The batch that found out stored nothing, and
// the store drops what it staged for the projection and refuses its
// Applies until Checkpoint reads it again: reading the checkpoint is how a
// writer takes a projection over.
var ErrFenced = errors.New("read model is written by another writer")

// ErrApplyTooLarge is wrapped by the error of an Apply that needs more
// messages than one atomic JetStream batch holds (maxBatch: one per changed
// key, one per list chunk it fills, one for the checkpoint, two for a new
// document). Nothing of it is staged.
var ErrApplyTooLarge = errors.New("apply too large for one atomic batch")

// errReadModelsClosed is returned by ReadModels after Close.
var errReadModelsClosed = errors.New("read model store is closed")

const (
	// maxInflightBatches leaves room under the server's 50 open batches
	// per stream for another replica's writes.
	maxInflightBatches = 16
	// maxBatchBytes ends a batch that Applies join: one Apply may make a
	// larger one, up to maxBatch messages.
	maxBatchBytes = 8 << 20
	// maxStages bounds a projection's batches staged and not committed:
	// beyond them Apply waits, so a slow JetStream holds projections back
	// instead of filling memory.
	maxStages = 4
	// maxCacheBytes bounds a projection's cache of committed values.
	maxCacheBytes = 4 << 20
	// maxSubject keeps a publish's protocol line under the server's 4096
	// bytes (max_control_line), past which it drops the connection.
	maxSubject = 3000
	// maxAttempts bounds the reads of something that keeps changing
	// meanwhile.
	maxAttempts = 20
	// singleReplicaGather is ReadModels.gather on a single-replica stream.
	singleReplicaGather = 10 * time.Millisecond
	// maxRetryWait caps the wait between two attempts of a commit.
	maxRetryWait = time.Second
)

// NewReadModels opens the read models kept under c's prefix, creating their
// stream (<prefix>_RM, c's replicas) if it does not exist, and purges the
// keys of generations an earlier process dropped without purging them.
// Closing the store does not close c.
func NewReadModels(ctx context.Context, c *Conn) (*ReadModels, error) {
	l := newLayout(c.Options().Prefix)
	st, err := c.CreateStream(ctx, l.streamConfig(c.Options().Replicas))
	if err != nil {
		return nil, fmt.Errorf("nats: read model stream %s: %w", l.stream, err)
	}
	if !st.CachedInfo().Config.AllowAtomicPublish {
		return nil, fmt.Errorf("nats: read model stream %s: the server does not take atomic batch publishes "+
			"(nats-server 2.12 or later does)", l.stream)
	}
	gather := time.Duration(0)
	if c.Options().Replicas == 1 {
		gather = singleReplicaGather
	}
	s := &ReadModels{
		gather:      gather,
		observe:     c.Options().ObserveReadModelsCommit,
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
type projection struct {
	mu sync.Mutex
	writer
	// stages are the Applies staged and not committed, in batches, oldest
	// first; a committer goroutine runs while there are any.
	stages     []*stage
	committing bool
}

// writer is what the store knows of a projection's committed state,
// guarded by projection.mu.
type writer struct {
	// known says that the fields below are the projection's state as of
	// the store's last read or write of it.
	known   bool
	gen     string // "" while the projection has no document
	headRev uint64 // sequence of its head message; 0 when there is none
	cpRev   uint64 // sequence of its checkpoint message
	cp      readmodel.Checkpoint
	// values caches keys' values in gen as of cpRev; cacheBytes is their
	// size, bounded by maxCacheBytes.
	values     map[string]*value
	cacheBytes int
	// fenced refuses Applies: another writer wrote the projection, or
	// staged Applies were lost.
	fenced error
}

// state is a projection as read from the stream.
type state struct {
	gen     string
	headRev uint64
	cpRev   uint64
	cp      readmodel.Checkpoint
	cpData  []byte
}

// adopt makes st what the store knows of the projection, forgetting its
// cache and fence.
func (w *writer) adopt(st state) {
	*w = writer{known: true, gen: st.gen, headRev: st.headRev, cpRev: st.cpRev, cp: st.cp}
}

// forget drops what the store knows: the next Apply reads it again.
func (w *writer) forget() { *w = writer{} }

// rev is the newest sequence the store knows of the projection.
func (w *writer) rev() uint64 { return max(w.headRev, w.cpRev) }

// cache keeps v as key's committed value, dropping others when the cache
// is full.
func (w *writer) cache(key string, v *value) {
	if w.values == nil {
		w.values = map[string]*value{}
	}
	if old := w.values[key]; old != nil {
		w.cacheBytes -= old.size()
	}
	w.values[key] = v
	w.cacheBytes += v.size()
	for k, old := range w.values { // in random order
		if w.cacheBytes <= maxCacheBytes {
			break
		}
		if k != key {
			delete(w.values, k)
			w.cacheBytes -= old.size()
		}
	}
}

// stage is a batch of staged Applies: what the keys they change are left
// with, the chunks they fill, and the checkpoint after them.
type stage struct {
	gen    string
	newGen bool // the batch creates the document: its head and gen entry
	work   map[string]*value
	order  []string // keys of work, first changed first
	chunks []outMsg
	cp     readmodel.Checkpoint
	bytes  int  // about the bytes of its messages, at most
	sealed bool // taken by the committer: no more Applies join
	born   time.Time
	// done is closed once the batch is committed or dropped; err then
	// says which.
	done chan struct{}
	err  error
}

// size is the number of messages the batch takes.
func (st *stage) size() int {
	n := len(st.order) + len(st.chunks) + 1
	if st.newGen {
		n += 2
	}
	return n
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

// Failure is the error of Applies that were staged and then lost other
// than to a fence (JetStream refused their batch for good); nil while
// none were. Each projection they belonged to refuses Applies until its
// Checkpoint is read again; a restart does that for all.
func (s *ReadModels) Failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
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
			return state{}, err
		}
	}
}

// Apply checks every change against the document as the committed state
// and the Applies staged before it leave it, stages the changes and cp,
// and returns; the commit follows in the background. A type clash, a
// value that does not encode as JSON or does not fit a NATS message, or
// more messages than one batch holds (ErrApplyTooLarge) is refused here
// and stages nothing; all but the type clash are engine.Permanent (a
// projection treats a type clash as such): retrying cannot fix them. An
// Apply returns ErrFenced once a batch of the projection was refused
// because another writer wrote it.
func (s *ReadModels) Apply(ctx context.Context, name string, changes []readmodel.Change, cp readmodel.Checkpoint) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	p := s.projection(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := s.stage(ctx, name, p, changes, cp); err != nil {
		return fmt.Errorf("apply to read model %q: %w", name, err)
	}
	return nil
}

// stage is Apply under p.mu.
func (s *ReadModels) stage(ctx context.Context, name string, p *projection, changes []readmodel.Change, cp readmodel.Checkpoint) error {
	for len(p.stages) >= maxStages && p.fenced == nil {
		if err := p.await(ctx, p.stages[0]); err != nil {
			return err
		}
	}
	if p.fenced != nil {
		return p.fenced
	}
	if !p.known {
		st, err := s.readState(ctx, name)
		if err != nil {
			return err
		}
		p.adopt(st)
	}
	gen, fresh := p.gen, false // fresh: no batch has stored the generation yet
	if n := len(p.stages); n > 0 {
		gen, fresh = p.stages[n-1].gen, p.stages[0].newGen
	}
	if gen != "" && !fresh {
		if err := s.loadValues(ctx, p, gen, changes); err != nil {
			return err
		}
	}
	err := readmodel.Validate(changes, func(i int) (readmodel.Kind, error) {
		if v := p.current(changes[i].Key); v != nil {
			return v.kind(), nil
		}
		return readmodel.KindMissing, nil // a set, which fits anything: not loaded
	})
	if err != nil {
		return err
	}
	var next *stage // the batch this Apply joins
	if n := len(p.stages); n > 0 && !p.stages[n-1].sealed {
		next = p.stages[n-1]
	}
	if gen == "" {
		gen = newGen()
	}
	o, err := s.overlay(p, gen, changes)
	if err != nil {
		return engine.Permanent(err)
	}
	if next != nil && (next.size()+o.size() > maxBatch || next.bytes+o.bytes > maxBatchBytes) {
		next.sealed = true
		next = nil
	}
	if next == nil {
		next = &stage{gen: gen, newGen: p.gen == "" && len(p.stages) == 0,
			work: map[string]*value{}, cp: p.currentCheckpoint(), done: make(chan struct{}), born: time.Now()}
		if n := next.size() + o.size(); n > maxBatch {
			return engine.Permanentf("%d changes make %d messages, more than the %d one atomic JetStream batch holds: %w",
				len(changes), n, maxBatch, ErrApplyTooLarge)
		}
	}
	if !p.committing {
		if err := s.startCommitter(); err != nil {
			return err
		}
		p.committing = true
		defer func() { go s.commitStages(name, p) }()
	}
	if len(p.stages) == 0 || p.stages[len(p.stages)-1] != next {
		p.stages = append(p.stages, next)
	}
	for _, key := range o.order {
		if _, ok := next.work[key]; !ok {
			next.order = append(next.order, key)
		}
		next.work[key] = o.work[key]
	}
	next.chunks = append(next.chunks, o.chunks...)
	next.bytes += o.bytes
	maps.Copy(next.cp, cp)
	return nil
}

// startCommitter counts a committer about to start, unless the store is
// closed: Close waits for the committers counted.
func (s *ReadModels) startCommitter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return errReadModelsClosed
	}
	s.committers.Add(1)
	return nil
}

// current is the value key holds once the staged Applies are committed:
// the newest staged, else the committed one if cached; nil if unknown.
func (p *projection) current(key string) *value {
	if v := p.staged(key); v != nil {
		return v
	}
	return p.values[key]
}

// staged is the value the staged Applies leave under key; nil if they do
// not change it.
func (p *projection) staged(key string) *value {
	for i := len(p.stages) - 1; i >= 0; i-- {
		if v := p.stages[i].work[key]; v != nil {
			return v
		}
	}
	return nil
}

// currentCheckpoint is a copy of the checkpoint once the staged Applies
// are committed.
func (p *projection) currentCheckpoint() readmodel.Checkpoint {
	cp := p.cp
	if n := len(p.stages); n > 0 {
		cp = p.stages[n-1].cp
	}
	out := make(readmodel.Checkpoint, len(cp)+1)
	maps.Copy(out, cp)
	return out
}

// await waits, p.mu unlocked, for st to be committed or dropped.
func (p *projection) await(ctx context.Context, st *stage) error {
	p.mu.Unlock()
	defer p.mu.Lock()
	select {
	case <-st.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loadValues caches the committed values that changes need to be checked
// and applied: of each key whose first change is not a set and that
// neither the cache nor a staged batch holds.
func (s *ReadModels) loadValues(ctx context.Context, p *projection, gen string, changes []readmodel.Change) error {
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
		if c.Op == readmodel.OpSet || p.current(c.Key) != nil {
			continue
		}
		m, err := s.last(ctx, s.l.value(gen, c.Key))
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

// overlay is what one Apply changes, built aside so that a change that
// fails leaves the staged batches as they were.
type overlay struct {
	work   map[string]*value
	order  []string
	chunks []outMsg
	bytes  int
}

func (o *overlay) size() int { return len(o.order) + len(o.chunks) }

// overlay applies changes to copies of the values they change, checking
// that every message they make fits NATS.
func (s *ReadModels) overlay(p *projection, gen string, changes []readmodel.Change) (*overlay, error) {
	o := &overlay{work: make(map[string]*value, len(changes))}
	work := func(key string) *value {
		if w := o.work[key]; w != nil {
			return w
		}
		w := &value{}
		if c := p.current(key); c != nil {
			*w = *c
			w.own = false
		}
		o.work[key] = w
		o.order = append(o.order, key)
		return w
	}
	for i, c := range changes {
		flush := func(v *value) {
			o.chunks = append(o.chunks, outMsg{subject: s.l.chunk(gen, c.Key, v.chunks), data: v.tail})
		}
		switch c.Op {
		case readmodel.OpSet:
			v, err := setValue(c.Value, flush)
			if err != nil {
				return nil, fmt.Errorf("change %d: set key %q: %w", i, c.Key, err)
			}
			*work(c.Key) = v
		case readmodel.OpAppend:
			item, err := readmodel.AppendJSON(nil, c.Value)
			if err != nil {
				return nil, fmt.Errorf("change %d: append to key %q: %w", i, c.Key, err)
			}
			work(c.Key).push(item, flush)
		case readmodel.OpIncrement:
			work(c.Key).increment(c.Delta)
		}
	}
	check := func(subject string, size int) error {
		if len(subject) > maxSubject {
			return fmt.Errorf("subject %.60s... of %d bytes: a key or projection name too long for a NATS subject (%d bytes at most, encoded)",
				subject, len(subject), maxSubject)
		}
		if limit := s.nc.MaxPayload() - 512; int64(size) > limit {
			return fmt.Errorf("%s: %d bytes, more than the %d a NATS message holds here (the server's max_payload, less headers)",
				subject, size, limit)
		}
		return nil
	}
	for _, key := range o.order {
		v := o.work[key]
		if err := check(s.l.value(gen, key), v.encodedSize()); err != nil {
			return nil, err
		}
		o.bytes += v.encodedSize()
	}
	for _, c := range o.chunks {
		if err := check(c.subject, len(c.data)); err != nil {
			return nil, err
		}
		o.bytes += len(c.data)
	}
	return o, nil
}

// commitStages commits p's staged batches, oldest first, until none is
// left. A batch that fails in a way a retry may cure (no answer, no stream
// leader) is sent again, with the same expectations, so at most one of its
// attempts is stored; asking the fenced subject which one settles a
// doubt. A fence, a refusal for good, or Close drops every staged batch.
func (s *ReadModels) commitStages(name string, p *projection) {
	defer s.committers.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.stages) > 0 {
		st := p.stages[0]
		if wait := s.gather - time.Since(st.born); wait > 0 {
			// Let more Applies join the batch (see ReadModels.gather).
			p.mu.Unlock()
			time.Sleep(wait)
			p.mu.Lock()
		}
		st.sealed = true
		msgs, fence := s.batchOf(name, p, st)
		p.mu.Unlock()
		start := time.Now()
		seq, err := s.commitRetrying(msgs, fence)
		p.mu.Lock()
		if err != nil {
			p.drop(err, s)
			break
		}
		if s.observe != nil {
			s.observe(len(msgs), time.Since(start))
		}
		p.committed(st, seq)
		p.stages = p.stages[1:]
		close(st.done)
	}
	p.committing = false
}

// batchOf lays st out as messages: the generation's entry first if new,
// the values, the chunks, the head if new, and the checkpoint last. fence
// is the subject whose expected revision decides which writer's batch is
// stored.
func (s *ReadModels) batchOf(name string, p *projection, st *stage) (msgs []outMsg, fence string) {
	msgs = make([]outMsg, 0, st.size())
	if st.newGen {
		msgs = append(msgs, outMsg{subject: s.l.genEntry(st.gen), data: []byte(name)})
	}
	for _, key := range st.order {
		msgs = append(msgs, outMsg{subject: s.l.value(st.gen, key), data: st.work[key].encode()})
	}
	msgs = append(msgs, st.chunks...)
	cpData, _ := json.Marshal(st.cp) // a map of numbers encodes
	fence, cpExpect := s.l.checkpoint(st.gen), p.cpRev
	if st.newGen {
		fence, cpExpect = s.l.head(name), 0
		msgs = append(msgs, outMsg{subject: fence, data: []byte(st.gen), expect: p.headRev, expectSet: true})
	}
	msgs = append(msgs, outMsg{subject: s.l.checkpoint(st.gen), data: cpData, expect: cpExpect, expectSet: true})
	return msgs, fence
}

// commitRetrying commits msgs, sending them again while the failure may
// pass, and returns the sequence of the last. All attempts expect fence at
// the same revision, so at most one is stored: when one is refused for a
// conflict, the fence's message says whether an earlier attempt, whose
// answer was lost, got there first.
func (s *ReadModels) commitRetrying(msgs []outMsg, fence string) (uint64, error) {
	ctx := context.Background()
	ids := map[string]bool{}
	for attempt := 0; ; attempt++ {
		id := newGen()
		ids[id] = true
		seq, err := s.commit(ctx, id, msgs)
		if err == nil && s.loseAnswer != nil && s.loseAnswer() {
			err = fmt.Errorf("%w: lost in a test", errInDoubt)
		}
		if err == nil {
			return seq, nil
		}
		if errors.Is(err, errConflict) && len(ids) > 1 {
			m, rerr := s.last(ctx, fence)
			switch {
			case rerr != nil:
				err = fmt.Errorf("%w: %w", errTransient, rerr)
			case m != nil && ids[m.header.Get(headerBatchID)]:
				if fence == msgs[len(msgs)-1].subject {
					return m.seq, nil
				}
				return m.seq + 1, nil // the head, just before the checkpoint
			}
		}
		if !errors.Is(err, errInDoubt) && !errors.Is(err, errTransient) || errors.Is(err, nats.ErrConnectionClosed) {
			return 0, err
		}
		if s.closed.Load() {
			return 0, fmt.Errorf("%w, with a batch still unanswered: %w", errReadModelsClosed, err)
		}
		time.Sleep(min(time.Duration(1<<min(attempt, 10))*time.Millisecond, maxRetryWait))
	}
}

// committed records what st's batch, stored up to sequence seq, leaves.
func (p *projection) committed(st *stage, seq uint64) {
	if st.newGen {
		p.gen, p.headRev = st.gen, seq-1 // the head comes just before the checkpoint
		p.values, p.cacheBytes = nil, 0
	}
	p.cpRev, p.cp = seq, st.cp
	for key, v := range st.work {
		p.cache(key, v.forCache())
	}
}

// drop gives up every staged batch after err, and fences the projection:
// the Applies in them had returned, and only reading the checkpoint again
// tells the writer where the projection stands.
func (p *projection) drop(err error, s *ReadModels) {
	n := 0
	for _, st := range p.stages {
		st.err = err
		close(st.done)
		n++
	}
	p.stages = nil
	p.forget()
	if errors.Is(err, errConflict) {
		p.fenced = fmt.Errorf("%w: JetStream refused a batch: %w; this store dropped what it staged "+
			"(%d batches) and applies nothing to the projection until it reads its Checkpoint again", ErrFenced, err, n)
		return
	}
	p.fenced = fmt.Errorf("staged Applies were lost (%d batches): %w; "+
		"this store applies nothing to the projection until it reads its Checkpoint again", n, err)
	if !errors.Is(err, errReadModelsClosed) {
		s.mu.Lock()
		if s.failed == nil {
			s.failed = p.fenced
		}
		s.mu.Unlock()
	}
}

// barrier waits until nothing is staged for p, and returns with p.mu held.
func (p *projection) barrier(ctx context.Context) error {
	p.mu.Lock()
	for len(p.stages) > 0 {
		if err := p.await(ctx, p.stages[len(p.stages)-1]); err != nil {
			p.mu.Unlock()
			return err
		}
	}
	return nil
}

// flushed waits until what was staged for name before it is committed or
// dropped: the newest batch staged, as batches are committed in order.
func (s *ReadModels) flushed(ctx context.Context, name string) error {
	p := s.projection(name)
	p.mu.Lock()
	if len(p.stages) == 0 {
		p.mu.Unlock()
		return nil
	}
	last := p.stages[len(p.stages)-1]
	err := p.await(ctx, last)
	p.mu.Unlock()
	return err
}

// Checkpoint reads the projection's checkpoint from JetStream, once what
// this store staged is committed. It is also how a writer takes a
// projection over: the revision read is what the store's next Apply
// expects, unless the store wrote a newer one meanwhile.
func (s *ReadModels) Checkpoint(ctx context.Context, name string) (readmodel.Checkpoint, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	if err := s.flushed(ctx, name); err != nil {
		return nil, err
	}
	st, err := s.readState(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("checkpoint of read model %q: %w", name, err)
	}
	p := s.projection(name)
	p.mu.Lock()
	if len(p.stages) == 0 && (!p.known || p.fenced != nil || max(st.headRev, st.cpRev) > p.rev()) {
		p.adopt(st)
	}
	p.mu.Unlock()
	if st.cp == nil {
		return readmodel.Checkpoint{}, nil
	}
	return st.cp, nil
}

// Checkpoints returns every stored projection's checkpoint, once what this
// store staged is committed.
func (s *ReadModels) Checkpoints(ctx context.Context) (map[string]readmodel.Checkpoint, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	staged := make([]string, 0, len(s.projections))
	for name := range s.projections {
		staged = append(staged, name)
	}
	s.mu.Unlock()
	for _, name := range staged {
		if err := s.flushed(ctx, name); err != nil {
			return nil, err
		}
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
// once what this store staged for it is committed, then purges its
// generation. Deleting an unknown projection is not an error.
func (s *ReadModels) Delete(ctx context.Context, name string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	p := s.projection(name)
	if err := p.barrier(ctx); err != nil {
		return err
	}
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
// then it purges to's old generation. It runs once what this store staged
// for either is committed, and costs the same whatever the document holds.
func (s *ReadModels) Move(ctx context.Context, from, to string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	pf, pt := s.projection(from), s.projection(to)
	first, second := pf, pt
	if to < from {
		first, second = pt, pf
	}
	if err := first.barrier(ctx); err != nil {
		return err
	}
	defer first.mu.Unlock()
	if from != to {
		if err := second.barrier(ctx); err != nil {
			return err
		}
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

// backoff waits before attempt+1 of a read or write that found its
// subject changed meanwhile (1 ms, doubling up to 64 ms), and gives up
// after maxAttempts.
func backoff(ctx context.Context, attempt int) error {
	if attempt+1 >= maxAttempts {
		return fmt.Errorf("it kept changing while read, %d times", maxAttempts)
	}
	return engbackoff.Sleep(ctx, time.Duration(1<<min(attempt, 6))*time.Millisecond)
}

// Close commits what is staged and makes later calls return an error;
// closing again is a no-op. A batch JetStream does not take is dropped
// rather than retried. The Conn stays open: its owner closes it.
func (s *ReadModels) Close() error {
	s.mu.Lock()
	s.closed.Store(true)
	s.mu.Unlock()
	s.committers.Wait()
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
