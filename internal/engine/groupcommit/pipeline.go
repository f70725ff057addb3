// Package groupcommit lets the goroutines writing to a storage engine at the
// same moment share one write and one sync, as a database's group commit
// does. Its shape is that of pebble's commitPipeline: the engine plugs in
// what it does with a group (Env), and the pipeline decides who does what.
//
//   - Writers (any goroutine) call Commit: their write joins the group being
//     gathered, which is an append under a mutex, never a hand-over to
//     another goroutine, and they wait until that group is durable.
//     Writers never touch the disk.
//   - The committer (one goroutine per pipeline) takes the gathered group
//     once the previous one is done, has the engine write it and sync it,
//     applies it, and wakes all of its writers with one close.
//   - While the committer writes and syncs, the next group gathers, so the
//     next sync starts the moment the last one ends and covers every writer
//     that came in the meantime. There is no timer: a lone writer is
//     committed at once. A write that may wait (CommitWithNext) rides with
//     the next group another writer brings about.
//
// Both disk engines commit through it: the outbox log (a write and an
// fdatasync of a segment file) and the bbolt file (a transaction, whose
// commit syncs itself).
package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Commit once Close has begun.
var ErrClosed = errors.New("group commit closed")

// Env is what an engine does with a group of writes of type W.
type Env[W any] struct {
	// Join, when set, runs as a write joins the group being gathered, under
	// the pipeline's lock and so in the order writes join: the outbox log
	// numbers its entries here. It must be quick and must not block.
	Join func(w *W)
	// Write writes a group. Only the committer calls it, one group at a
	// time. A write that fails on its own is failed with Group.Fail; an
	// error returned fails every other write of the group.
	Write func(g *Group[W]) error
	// Sync, when set, makes what Write wrote durable. bbolt's commit syncs
	// itself, so its Write does both.
	Sync func() error
	// Apply, when set, runs after a successful sync and before the group's
	// writers wake: whatever they read next sees their writes.
	Apply func(g *Group[W])
}

// Options tune a pipeline.
type Options struct {
	// MaxWrites bounds the writes of one group; a writer that finds the
	// group full waits for the next one. Zero means no bound, and 1 is a
	// sync per write: the baseline the benchmarks compare group commit with.
	MaxWrites int
	// Yield makes the committer yield before it takes a group, take whoever
	// joined meanwhile and repeat while a yield brings someone: the writers
	// that are runnable but have not joined yet (those the last commit
	// woke, requests being decoded) join first, instead of each paying a
	// sync of their own in the next group. When nothing else is runnable
	// the yield returns at once, so a lone writer waits for nothing.
	Yield bool
	// Observe, when set, is told of each group written and synced: how
	// many writes it held and how long its write and its sync took (a
	// sync of zero when Env has no Sync). It runs on the committer.
	Observe func(writes int, write, sync time.Duration)
}

// Pipeline is a group committer for writes of type W. Its methods are safe
// for concurrent use.
type Pipeline[W any] struct {
	env  Env[W]
	opts Options

	// The writers' side: the group being gathered.
	gather struct {
		sync.Mutex
		group  *Group[W]
		closed bool
	}

	// The committer's side; what it uses between groups is local to run.
	kick    chan struct{} // buffered 1: a write joined
	closing chan struct{} // closed by Close: commit what joined, then stop
	stopped chan struct{} // closed when the committer returns
	once    sync.Once
	commits atomic.Uint64
}

// New starts a pipeline committing through env. Close stops it.
func New[W any](env Env[W], opts Options) *Pipeline[W] {
	p := &Pipeline[W]{
		env: env, opts: opts,
		kick: make(chan struct{}, 1), closing: make(chan struct{}), stopped: make(chan struct{}),
	}
	p.gather.group = newGroup[W](nil)
	go p.run()
	return p
}

// Commit adds w to the group being gathered and returns once that group is
// written and synced, with w's own outcome. ctx bounds only the wait for
// room in a full group: once w has joined, Commit waits for the outcome, so
// a caller never walks away from a write that may still happen.
func (p *Pipeline[W]) Commit(ctx context.Context, w W) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g, i, err := p.join(ctx, w, true)
	if err != nil {
		return err
	}
	<-g.done
	return g.outcome(i)
}

// CommitWithNext is Commit for a write that need not be durable at once:
// it joins the group being gathered without waking the committer, so that
// it shares the commit the next writer brings about instead of costing
// one of its own. Once within has passed, or hurry receives, it wakes the
// committer itself.
func (p *Pipeline[W]) CommitWithNext(ctx context.Context, w W, within time.Duration, hurry <-chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g, i, err := p.join(ctx, w, false)
	if err != nil {
		return err
	}
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-g.done:
		return g.outcome(i)
	case <-timer.C:
	case <-hurry:
	}
	p.wake()
	<-g.done
	return g.outcome(i)
}

// Commits returns how many groups have been written and synced: with the
// number of writes, it tells how many writers share a commit.
func (p *Pipeline[W]) Commits() uint64 { return p.commits.Load() }

// Close refuses new writes, waits for the committer to commit the writes
// that joined before, and stops it. Closing again waits for the same.
func (p *Pipeline[W]) Close() {
	p.once.Do(func() {
		p.gather.Lock()
		p.gather.closed = true // no write joins after this
		p.gather.Unlock()
		close(p.closing)
	})
	<-p.stopped
}

// join adds w to the group being gathered, waiting while that group is full,
// and returns the group and w's index in it. wake wakes the committer.
func (p *Pipeline[W]) join(ctx context.Context, w W, wake bool) (*Group[W], int, error) {
	p.gather.Lock()
	for {
		if p.gather.closed {
			p.gather.Unlock()
			return nil, 0, ErrClosed
		}
		g := p.gather.group
		if p.opts.MaxWrites <= 0 || len(g.writes) < p.opts.MaxWrites {
			break
		}
		if g.taken == nil {
			g.taken = make(chan struct{})
		}
		taken := g.taken
		p.gather.Unlock()
		select {
		case <-taken:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		p.gather.Lock()
	}
	g := p.gather.group
	g.writes = append(g.writes, w)
	i := len(g.writes) - 1
	if p.env.Join != nil {
		// The group's copy: a pointer to w would move w to the heap.
		p.env.Join(&g.writes[i])
	}
	p.gather.Unlock()
	if wake {
		p.wake()
	}
	return g, i, nil
}

// wake makes the committer take the group being gathered.
func (p *Pipeline[W]) wake() {
	select {
	case p.kick <- struct{}{}:
	default: // the committer is woken already
	}
}

// run is the committer. It stops after Close, once the writes that joined
// before are committed and answered.
func (p *Pipeline[W]) run() {
	defer close(p.stopped)
	// The writes slice of the last group answered, for the next group:
	// two alternate instead of every group growing its own.
	var spare []W
	for {
		stopping := false
		select {
		case <-p.kick:
		case <-p.closing:
			stopping = true
		}
		if p.opts.Yield && !stopping {
			p.awaitStragglers()
		}
		if g := p.take(spare); g != nil {
			p.commit(g)
			// Its writers read only its outcome now.
			clear(g.writes)
			spare = g.writes[:0]
		}
		if stopping {
			return
		}
	}
}

// awaitStragglers yields while writers keep joining the gathered group,
// up to MaxWrites.
func (p *Pipeline[W]) awaitStragglers() {
	n := p.gathered()
	for p.opts.MaxWrites <= 0 || n < p.opts.MaxWrites {
		runtime.Gosched()
		m := p.gathered()
		if m == n {
			return
		}
		n = m
	}
}

// gathered is the number of writes in the group being gathered.
func (p *Pipeline[W]) gathered() int {
	p.gather.Lock()
	defer p.gather.Unlock()
	return len(p.gather.group.writes)
}

// take swaps the gathered group for a new one on spare, and returns it; nil
// when nothing joined.
func (p *Pipeline[W]) take(spare []W) *Group[W] {
	p.gather.Lock()
	defer p.gather.Unlock()
	g := p.gather.group
	if len(g.writes) == 0 {
		return nil
	}
	p.gather.group = newGroup(spare)
	if g.taken != nil {
		close(g.taken) // writers waiting for room join the new group
	}
	return g
}

// commit writes, syncs and applies g, then wakes its writers.
func (p *Pipeline[W]) commit(g *Group[W]) {
	var start, written time.Time
	if p.opts.Observe != nil {
		start = time.Now()
	}
	err := p.env.Write(g)
	if p.opts.Observe != nil {
		written = time.Now()
	}
	if err == nil && p.env.Sync != nil {
		err = p.env.Sync()
	}
	if err == nil {
		if p.opts.Observe != nil {
			var synced time.Duration
			if p.env.Sync != nil {
				synced = time.Since(written)
			}
			p.opts.Observe(len(g.writes), written.Sub(start), synced)
		}
		p.commits.Add(1)
		if p.env.Apply != nil {
			p.env.Apply(g)
		}
	}
	g.err = err
	close(g.done)
}
