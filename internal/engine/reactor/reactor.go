// Package reactor delivers a stream's events to user code over HTTP and
// takes its answers as new events. A Reactor is the router handler of its
// route: the router hands it events one at a time, in order, and it runs
// them through the reactor's pipeline in lanes, so that slow deliveries of
// different keys overlap while each lane keeps its order. Its checkpoint
// moves only past events whose delivery has ended (succeeded, skipped or
// dead-lettered), so a restart delivers again whatever was in flight.
package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// Ordering is how a Reactor orders deliveries.
type Ordering string

const (
	// Ordered delivers one event at a time per stream, in sequence order.
	Ordered Ordering = "Ordered"
	// KeyOrdered keeps each key's events in order and delivers different
	// keys in parallel; unkeyed events form one lane of their own.
	KeyOrdered Ordering = "KeyOrdered"
	// Unordered only bounds the number of deliveries in flight.
	Unordered Ordering = "Unordered"
)

// DefaultMaxInFlight is the bound on parallel deliveries when none is given.
const DefaultMaxInFlight = 16

// MaxMaxInFlight is the largest accepted MaxInFlight.
const MaxMaxInFlight = 1000

// ErrClosed is returned by Accept once the Reactor is closed.
var ErrClosed = errors.New("reactor closed")

// Config configures a Reactor.
type Config struct {
	// Name identifies the reactor in logs.
	Name string
	// Checkpoints stores the checkpoint under CheckpointName, as a
	// projection's is stored with its read model.
	Checkpoints    readmodel.Store
	CheckpointName string
	// Ordering defaults to KeyOrdered.
	Ordering Ordering
	// MaxInFlight bounds the deliveries running at once (KeyOrdered,
	// Unordered); default DefaultMaxInFlight.
	MaxInFlight int
	// OnDeadLetter, when set, is told of each event dead-lettered.
	OnDeadLetter func(msg engine.Message)
	Logger       *slog.Logger
}

// Validate reports a setting out of range.
func (c Config) Validate() error {
	switch {
	case c.Checkpoints == nil || c.CheckpointName == "":
		return errors.New("reactor: a checkpoint store and name are required")
	case c.Ordering != "" && c.Ordering != Ordered && c.Ordering != KeyOrdered && c.Ordering != Unordered:
		return fmt.Errorf("reactor: ordering %q: want Ordered, KeyOrdered or Unordered", c.Ordering)
	case c.MaxInFlight < 0 || c.MaxInFlight > MaxMaxInFlight:
		return fmt.Errorf("reactor: maxInFlight %d: want 1 to %d", c.MaxInFlight, MaxMaxInFlight)
	}
	return nil
}

// Reactor dispatches events to lanes and keeps the checkpoint.
type Reactor struct {
	cfg Config
	// laneLimit bounds the workers, so the deliveries in flight; window bounds the events
	// accepted and not yet done, so a stuck lane holds back at most that many.
	laneLimit, window int

	handler atomic.Pointer[engine.Handler]

	ctx    context.Context // ends with Close; lanes deliver under it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// changed is closed (and replaced) when a lane frees room while
	// someone waits for it (waited).
	changed chan struct{}
	waited  bool
	lanes   map[laneID]*lane
	// free are lanes that ran empty, kept for the next ones: over many
	// keys most events start a lane.
	free    []*lane
	pending int
	streams map[string]*progress
	// ready are lanes waiting for a worker. Workers are goroutines that
	// run lane after lane, started as needed up to laneLimit and kept: a
	// goroutine per lane would start one per event over many keys, and
	// grow its stack through the pipeline and the HTTP client every time.
	ready         []*lane
	workers, idle int
	wake          chan struct{} // a lane is ready

	save chan struct{} // wakes the checkpoint saver

	// redriven holds the marks of the redrives handed to lanes, kept after
	// they are recorded: a redrive reads the records before it hands
	// events, so one recorded meanwhile would be handed again.
	redriven map[string]bool

	delivered    atomic.Uint64
	deadLettered atomic.Uint64

	errMu   sync.Mutex
	lastErr string
}

// lane holds the events of one ordering unit (a stream, a key, or one
// event), delivered one after the other: queue[head] is in delivery, the
// rest wait.
type lane struct {
	id    laneID
	queue []item
	head  int
}

// laneID names a lane: a stream (Ordered), a stream's key or its unkeyed
// events (KeyOrdered, key ""), or one event (Unordered, by sequence).
type laneID struct {
	stream, key string
	seq         uint64
}

// maxFreeQueue is the largest queue a freed lane keeps for reuse: one that
// grew for a busy key is let go.
const maxFreeQueue = 8

// item is an event in a lane: one the route handed over, or a redrive.
type item struct {
	msg     engine.Message
	redrive *redrive
}

// redrive is a dead-lettered event handed again by Redeliver.
type redrive struct {
	engine.Redrive
	// done records the redrive once its delivery has ended.
	done func(ctx context.Context) error
}

// progress is the checkpoint bookkeeping of one stream.
type progress struct {
	// accepted is the last sequence handed to a lane (or the stored
	// checkpoint before any was).
	accepted uint64
	// open are the accepted sequences not yet known done, ascending; done
	// marks those of them that are done out of order.
	open []uint64
	done map[uint64]bool
	// saved is the checkpoint last stored.
	saved uint64
}

// checkpoint is the last sequence before which every event is done.
func (p *progress) checkpoint() uint64 {
	if len(p.open) == 0 {
		return p.accepted
	}
	return p.open[0] - 1
}

// New returns a Reactor that delivers through handler (the pipeline around
// a Sink) and keeps its checkpoint in cfg.Checkpoints.
func New(cfg Config, handler engine.Handler) (*Reactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Ordering == "" {
		cfg.Ordering = KeyOrdered
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Reactor{
		cfg:       cfg,
		laneLimit: cfg.MaxInFlight,
		window:    max(4*cfg.MaxInFlight, 64),
		changed:   make(chan struct{}),
		lanes:     make(map[laneID]*lane),
		streams:   make(map[string]*progress),
		redriven:  make(map[string]bool),
		save:      make(chan struct{}, 1),
		wake:      make(chan struct{}, 1),
	}
	if cfg.Ordering == Ordered {
		r.laneLimit = int(^uint(0) >> 1) // one lane per stream, however many
	}
	r.SetHandler(handler)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Go(r.saveLoop)
	return r, nil
}

// SetHandler makes h the chain used from the next delivery on.
func (r *Reactor) SetHandler(h engine.Handler) { r.handler.Store(&h) }

// Position is where the route consumes stream from: past every event
// already accepted, or the stored checkpoint.
func (r *Reactor) Position(ctx context.Context, stream string) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := r.progressOf(ctx, stream)
	if err != nil {
		return 0, err
	}
	return p.accepted, nil
}

// Checkpoint is the last sequence of stream before which every event is
// done: the stored checkpoint until the stream's first event is handed.
func (r *Reactor) Checkpoint(ctx context.Context, stream string) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := r.progressOf(ctx, stream)
	if err != nil {
		return 0, err
	}
	return p.checkpoint(), nil
}

// progressOf returns stream's bookkeeping, loading its stored checkpoint
// the first time. Callers hold r.mu.
func (r *Reactor) progressOf(ctx context.Context, stream string) (*progress, error) {
	if p, ok := r.streams[stream]; ok {
		return p, nil
	}
	cp, err := r.cfg.Checkpoints.Checkpoint(ctx, r.cfg.CheckpointName)
	if err != nil {
		return nil, fmt.Errorf("reactor %q: load checkpoint: %w", r.cfg.Name, err)
	}
	p := &progress{accepted: cp[stream], saved: cp[stream], done: make(map[uint64]bool)}
	r.streams[stream] = p
	return p, nil
}

// Handle is the route's handler: it hands msg to its lane, waiting while
// the lanes are full, and returns without waiting for the delivery.
func (r *Reactor) Handle(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
	id := r.laneID(msg)
	for {
		r.mu.Lock()
		p, err := r.progressOf(ctx, msg.Stream)
		if err != nil {
			r.mu.Unlock()
			return nil, err
		}
		if msg.Sequence <= p.accepted {
			r.mu.Unlock()
			return nil, nil // already in a lane or done
		}
		if r.enqueueLocked(id, item{msg: msg}) {
			p.accepted = msg.Sequence
			p.open = append(p.open, msg.Sequence)
			r.mu.Unlock()
			return nil, nil
		}
		if err := r.waitLocked(ctx); err != nil {
			return nil, err
		}
	}
}

// Redeliver hands a dead-lettered event to its lane again, for a redrive:
// it is delivered through the current chain with rd in its context, after
// the events its lane holds already and before those handed to it later,
// like a live event of that moment (its checkpoint does not move for it).
// done is called once the delivery has ended, whatever its outcome, to
// record the redrive; it is retried until it succeeds or the Reactor
// closes. Redeliver waits while the lanes are full, and returns false
// without handing msg when this Reactor was handed a redrive with the same
// mark already.
func (r *Reactor) Redeliver(ctx context.Context, msg engine.Message, rd engine.Redrive,
	done func(ctx context.Context) error) (bool, error) {
	id := r.laneID(msg)
	r.mu.Lock()
	for {
		if r.redriven[rd.Mark] {
			r.mu.Unlock()
			return false, nil
		}
		if r.enqueueLocked(id, item{msg: msg, redrive: &redrive{Redrive: rd, done: done}}) {
			r.redriven[rd.Mark] = true
			r.mu.Unlock()
			return true, nil
		}
		if err := r.waitLocked(ctx); err != nil {
			return false, err
		}
		r.mu.Lock()
	}
}

// enqueueLocked appends it to the lane id when there is room, starting
// the lane if needed, and reports whether it did. Lanes are bounded by the
// window only: the workers bound the deliveries in flight, and a lane
// ready ahead of them lets a worker that finishes go straight on to the
// next key instead of waiting for the route to hand one. Callers hold r.mu.
func (r *Reactor) enqueueLocked(id laneID, it item) bool {
	l, running := r.lanes[id]
	if r.pending >= r.window {
		return false
	}
	r.pending++
	if running {
		if l.head > 0 && len(l.queue) == cap(l.queue) {
			// A lane that never runs empty (Ordered) reuses its
			// delivered slots instead of growing.
			n := copy(l.queue, l.queue[l.head:])
			clear(l.queue[n:])
			l.queue, l.head = l.queue[:n], 0
		}
		l.queue = append(l.queue, it)
		return true
	}
	if n := len(r.free); n > 0 {
		l = r.free[n-1]
		r.free[n-1] = nil
		r.free = r.free[:n-1]
	} else {
		l = &lane{}
	}
	l.id = id
	l.queue = append(l.queue, it)
	r.lanes[id] = l
	r.readyLocked(l)
	return true
}

// waitLocked releases r.mu and waits until a lane frees room, ctx ends or
// the Reactor closes. Callers hold r.mu.
func (r *Reactor) waitLocked(ctx context.Context) error {
	wait := r.changed
	r.waited = true
	r.mu.Unlock()
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.ctx.Done():
		return ErrClosed
	}
}

func (r *Reactor) laneID(msg engine.Message) laneID {
	switch r.cfg.Ordering {
	case Ordered:
		return laneID{stream: msg.Stream}
	case Unordered:
		return laneID{stream: msg.Stream, seq: msg.Sequence}
	default:
		return laneID{stream: msg.Stream, key: msg.Key}
	}
}

// readyLocked queues l for a worker, starting one when none is idle.
// Callers hold r.mu.
func (r *Reactor) readyLocked(l *lane) {
	r.ready = append(r.ready, l)
	if r.idle == 0 && r.workers < r.laneLimit {
		r.workers++
		r.wg.Go(r.work)
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// work runs ready lanes, one after the other, until the Reactor closes.
func (r *Reactor) work() {
	// Deliveries run under a context of this worker's: each attempt's
	// timeout registers with it, not with one context every worker shares.
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	for {
		r.mu.Lock()
		for len(r.ready) == 0 {
			r.idle++
			r.mu.Unlock()
			select {
			case <-r.wake:
			case <-r.ctx.Done():
				return
			}
			r.mu.Lock()
			r.idle--
		}
		l := r.ready[0]
		r.ready[0] = nil
		r.ready = r.ready[1:]
		if len(r.ready) > 0 {
			select { // another idle worker takes the next one
			case r.wake <- struct{}{}:
			default:
			}
		}
		it := l.queue[l.head]
		r.mu.Unlock()
		r.runLane(ctx, l, it)
	}
}

// runLane delivers the lane's events in order, from it, its first, until
// it is empty or the Reactor closes.
func (r *Reactor) runLane(ctx context.Context, l *lane, it item) {
	for {
		deliverCtx := ctx
		if it.redrive != nil {
			deliverCtx = engine.WithRedrive(ctx, it.redrive.Redrive)
		}
		if !r.deliver(deliverCtx, it.msg) || (it.redrive != nil && !r.recordRedrive(it.redrive)) {
			return // closed: what is left is delivered again after a restart
		}
		r.mu.Lock()
		l.queue[l.head] = item{} // holds no payload once delivered
		l.head++
		r.pending--
		if it.redrive == nil {
			r.markDone(it.msg)
		}
		empty := l.head == len(l.queue)
		if empty {
			r.freeLocked(l)
		} else {
			it = l.queue[l.head]
		}
		if r.waited {
			close(r.changed)
			r.changed = make(chan struct{})
			r.waited = false
		}
		r.mu.Unlock()
		if empty {
			return
		}
	}
}

// freeLocked retires the empty lane l and keeps it for reuse. Callers hold
// r.mu.
func (r *Reactor) freeLocked(l *lane) {
	delete(r.lanes, l.id)
	l.id, l.head = laneID{}, 0
	if cap(l.queue) > maxFreeQueue {
		l.queue = nil
	} else {
		l.queue = l.queue[:0]
	}
	r.free = append(r.free, l)
}

// markDone records msg as done and wakes the saver when the checkpoint
// moved. Callers hold r.mu.
func (r *Reactor) markDone(msg engine.Message) {
	p := r.streams[msg.Stream]
	before := p.checkpoint()
	p.done[msg.Sequence] = true
	for len(p.open) > 0 && p.done[p.open[0]] {
		delete(p.done, p.open[0])
		p.open = p.open[1:]
	}
	if p.checkpoint() != before {
		select {
		case r.save <- struct{}{}:
		default:
		}
	}
}

// Pauses between attempts at an event whose handling settled nothing (the
// dead-letter could not be written, say).
const (
	minPause = 50 * time.Millisecond
	maxPause = 5 * time.Second
)

// recordRedrive calls rd.done until it succeeds. It returns false when the
// Reactor closed first: the dead letter stays to be redriven again.
func (r *Reactor) recordRedrive(rd *redrive) bool {
	pauses := backoff.Backoff{Initial: minPause, Max: maxPause}
	for {
		err := rd.done(r.ctx)
		if err == nil {
			return true
		}
		if r.ctx.Err() != nil {
			return false
		}
		r.setErr(err)
		r.cfg.Logger.Error("reactor redrive not recorded; trying again", "reactor", r.cfg.Name, "error", err)
		if backoff.Sleep(r.ctx, pauses.Next()) != nil {
			return false
		}
	}
}

// deliver runs the chain on msg until its outcome settles it. It returns
// false when the Reactor closed first. ctx is the Reactor's, or derived
// from it.
func (r *Reactor) deliver(ctx context.Context, msg engine.Message) bool {
	pauses := backoff.Backoff{Initial: minPause, Max: maxPause}
	for {
		if r.ctx.Err() != nil {
			return false
		}
		_, err := (*r.handler.Load()).Handle(ctx, msg)
		switch {
		case err == nil:
			r.delivered.Add(1)
			r.setErr(nil)
			return true
		case errors.Is(err, engine.ErrSkip):
			return true
		case errors.Is(err, engine.ErrDeadLettered):
			r.deadLettered.Add(1)
			if r.cfg.OnDeadLetter != nil {
				r.cfg.OnDeadLetter(msg)
			}
			return true
		case r.ctx.Err() != nil:
			return false
		}
		r.setErr(err)
		pause := pauses.Next()
		r.cfg.Logger.Error("reactor event not settled; trying again",
			"reactor", r.cfg.Name, "stream", msg.Stream, "sequence", msg.Sequence, "id", msg.ID,
			"error", err, "retryIn", pause)
		if backoff.Sleep(r.ctx, pause) != nil {
			return false
		}
	}
}

// saveLoop stores the checkpoint when it moves, off the lanes' path.
func (r *Reactor) saveLoop() {
	pauses := backoff.Backoff{Initial: minPause, Max: maxPause}
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.save:
		}
		if err := r.saveCheckpoint(r.ctx); err != nil && r.ctx.Err() == nil {
			r.setErr(err)
			r.cfg.Logger.Error("reactor checkpoint not saved; trying again", "reactor", r.cfg.Name, "error", err)
			if backoff.Sleep(r.ctx, pauses.Next()) != nil {
				return
			}
			select {
			case r.save <- struct{}{}:
			default:
			}
			continue
		}
		pauses.Reset()
	}
}

// saveCheckpoint stores the streams' checkpoints that moved.
func (r *Reactor) saveCheckpoint(ctx context.Context) error {
	r.mu.Lock()
	cp := readmodel.Checkpoint{}
	for s, p := range r.streams {
		if c := p.checkpoint(); c != p.saved {
			cp[s] = c
		}
	}
	r.mu.Unlock()
	if len(cp) == 0 {
		return nil
	}
	if err := r.cfg.Checkpoints.Apply(ctx, r.cfg.CheckpointName, nil, cp); err != nil {
		return fmt.Errorf("reactor %q: save checkpoint: %w", r.cfg.Name, err)
	}
	r.mu.Lock()
	for s, c := range cp {
		r.streams[s].saved = c
	}
	r.mu.Unlock()
	return nil
}

// Close stops the lanes after the delivery each has in hand (its context is
// cancelled, so an HTTP request in flight ends) and saves the checkpoint.
// Events not done are delivered again by the next Reactor of this name.
func (r *Reactor) Close() error {
	r.cancel()
	r.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.saveCheckpoint(ctx)
}

func (r *Reactor) setErr(err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if err == nil {
		r.lastErr = ""
		return
	}
	r.lastErr = err.Error()
}

// Stats is a snapshot of a Reactor's progress.
type Stats struct {
	// Delivered counts the events a sink accepted; DeadLettered those that
	// failed for good. Both count since the Reactor was built.
	Delivered    uint64
	DeadLettered uint64
	// InFlight is the events accepted and not yet done.
	InFlight int
	// Checkpoint is, per stream, the last sequence up to which every event
	// is done.
	Checkpoint map[string]uint64
	// Err is the last failure that held delivery up, if it has not recovered.
	Err string
}

// Stats returns a snapshot.
func (r *Reactor) Stats() Stats {
	st := Stats{Delivered: r.delivered.Load(), DeadLettered: r.deadLettered.Load(), Checkpoint: map[string]uint64{}}
	r.mu.Lock()
	st.InFlight = r.pending
	for s, p := range r.streams {
		st.Checkpoint[s] = p.checkpoint()
	}
	r.mu.Unlock()
	r.errMu.Lock()
	st.Err = r.lastErr
	r.errMu.Unlock()
	return st
}
