package boltstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// maxStagedApplies bounds the Applies staged and not yet taken by a commit:
// beyond it Apply waits, so a disk slower than the projections holds them
// back instead of filling memory.
const maxStagedApplies = 8192

// readModelCommitWait is how long staged Applies may wait for another
// writer's commit to join (the outbox processor's appends come every
// disk.ProcessorBatchDelay or so under load) before they are committed on
// their own. A read waits for none of it: it hurries the commit.
const readModelCommitWait = 20 * time.Millisecond

// writeBehind commits the read models' Applies in the background. A
// projection applies its events one at a time, so with a commit per Apply
// it would store one event per pair of fdatasyncs. Here an Apply is checked
// and staged at once, and one goroutine commits everything staged in one
// transaction, while the next Applies stage behind it. That transaction is
// the next one the DB commits for another writer (under load, the outbox
// processor's next append), so the read models cost no commit of their
// own; they wait readModelCommitWait at most, and not at all while a read,
// a full stage or Close waits for them.
//
// Staging keeps the guarantees: an Apply's changes and checkpoint are
// committed in the same transaction, in staging order, so a restart finds
// a document and checkpoint that agree and replays the events after it;
// reads wait for what was staged before them. A commit that fails stops
// the store for good (Failure): the Applies it lost had already returned,
// and only a restart, which reads the committed checkpoints back, knows
// where each projection stands again.
type writeBehind struct {
	db *DB

	mu      sync.Mutex
	pending []*applyTx
	// uncommitted holds what each projection's Applies not yet committed
	// leave behind.
	uncommitted       map[string]*uncommitted
	staged, committed uint64
	failed            error
	stopped           bool
	// changed is closed and replaced whenever committed or failed changes.
	changed chan struct{}

	kick chan struct{} // buffered 1: a commit is wanted, or the close
	// hurry, buffered 1, cuts short the commit's wait for another writer:
	// someone waits for it.
	hurry chan struct{}
	done  chan struct{}
}

// uncommitted is what a projection's Applies not yet committed leave: what
// each key they change is left with, and how many they are (at none, the
// committed document is the truth again).
type uncommitted struct {
	keys map[string]stagedKey
	open int
}

// stagedKey is what the Applies not yet committed leave under one key: its
// kind, and its stored value when the last of them set one outright (nil
// when that value depends on the committed one, as an append's does).
type stagedKey struct {
	kind readmodel.Kind
	set  []byte // tagged, as the doc bucket holds it
}

func newWriteBehind(db *DB) *writeBehind {
	w := &writeBehind{
		db: db, uncommitted: map[string]*uncommitted{},
		changed: make(chan struct{}), kick: make(chan struct{}, 1), hurry: make(chan struct{}, 1), done: make(chan struct{}),
	}
	go w.commitLoop()
	return w
}

// stage validates a against the document as the committed state and the
// Applies staged before it leave it, and queues it for the next commit.
func (w *writeBehind) stage(ctx context.Context, a *applyTx) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.failed == nil && !w.stopped && len(w.pending) >= maxStagedApplies {
		if err := w.waitLocked(ctx); err != nil {
			return err
		}
	}
	switch {
	case w.failed != nil:
		return w.failed
	case w.stopped:
		return errReadModelsClosed // a staged Apply would never be committed
	}
	u := w.uncommitted[a.projection]
	var staged map[string]stagedKey
	if u != nil {
		staged = u.keys
	}
	if err := w.validate(staged, a); err != nil {
		return err
	}
	if u == nil {
		u = &uncommitted{keys: make(map[string]stagedKey, len(a.given))}
		w.uncommitted[a.projection] = u
	}
	for i := range a.given {
		sk := stagedKey{kind: a.given[i].Leaves()}
		if c := &a.changes[i]; c.op == readmodel.OpSet && c.items == nil {
			sk.set = c.value
		}
		u.keys[a.given[i].Key] = sk
	}
	a.given = nil // the caller's, who may reuse it
	u.open++
	w.pending = append(w.pending, a)
	w.staged++
	w.kickLocked()
	return nil
}

// kickLocked wakes the commit loop, with w.mu held: stage and close change
// what it finds, under w.mu, before they kick it.
func (w *writeBehind) kickLocked() {
	select {
	case w.kick <- struct{}{}:
	default: // a kick is waiting already; the loop will see this change
	}
}

// validate runs readmodel.Validate with the kinds staged Applies leave
// behind (staged), reading the committed document only for a key none of
// them changed.
func (w *writeBehind) validate(staged map[string]stagedKey, a *applyTx) error {
	allStaged := true
	for i := range a.given {
		if _, ok := staged[a.given[i].Key]; !ok {
			allStaged = false
			break
		}
	}
	if allStaged {
		return readmodel.Validate(a.given, func(i int) (readmodel.Kind, error) {
			return staged[a.given[i].Key].kind, nil
		})
	}
	return w.db.View(func(tx *bolt.Tx) error {
		var doc *bolt.Bucket
		if p := tx.Bucket(bucketReadModels).Bucket(a.name); p != nil {
			if doc = p.Bucket(bucketDoc); doc == nil {
				return fmt.Errorf("%w: the doc bucket is missing", codec.ErrCorrupt)
			}
		}
		return readmodel.Validate(a.given, func(i int) (readmodel.Kind, error) {
			if sk, ok := staged[a.given[i].Key]; ok {
				return sk.kind, nil
			}
			return storedKind(doc, a.changes[i].key)
		})
	})
}

// waitLocked waits, with w.mu held on entry and on return, until a commit
// ends or fails, or ctx ends. It hurries the commit.
func (w *writeBehind) waitLocked(ctx context.Context) error {
	ch := w.changed
	w.hurryLocked()
	w.mu.Unlock()
	defer w.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// barrier waits until every Apply staged before it is committed, and
// returns the store's failure if a commit failed.
func (w *writeBehind) barrier(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	target := w.staged
	for w.committed < target && w.failed == nil {
		if err := w.waitLocked(ctx); err != nil {
			return err
		}
	}
	return w.failed
}

// stagedValue reports whether an Apply not yet committed changes key of
// projection, and the value the last of them set outright (nil when it did
// something else). A key none of them changes holds its committed value.
// After a failed commit it returns the failure: what is staged is lost.
func (w *writeBehind) stagedValue(projection, key string) (set []byte, changed bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return nil, false, w.failed
	}
	u := w.uncommitted[projection]
	if u == nil {
		return nil, false, nil
	}
	sk, ok := u.keys[key]
	return sk.set, ok, nil
}

// failure is the error that stopped the store, nil while it works.
func (w *writeBehind) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// hurryLocked, with w.mu held, asks the commit waiting for another
// writer's to go ahead on its own.
func (w *writeBehind) hurryLocked() {
	select {
	case w.hurry <- struct{}{}:
	default: // hurried already
	}
}

// close commits what is staged and stops the commit loop.
func (w *writeBehind) close() {
	w.mu.Lock()
	w.stopped = true
	w.kickLocked()
	w.hurryLocked()
	w.mu.Unlock()
	<-w.done
}

// commitLoop commits everything staged, one transaction at a time, until
// close; it commits what is left before it returns.
func (w *writeBehind) commitLoop() {
	defer close(w.done)
	var spare []*applyTx
	for range w.kick {
		batch, stopped := w.commit(spare)
		if len(batch) > 0 {
			clear(batch) // hold no changes past their commit
			spare = batch
		}
		// Nothing is staged once stopped is set, so the commit that saw it
		// took the last; otherwise the next kick, or one waiting now,
		// brings more.
		if stopped {
			return
		}
	}
}

// take returns the Applies to commit and makes room for the next ones.
// Two arrays alternate: Applies stage into spare's while the batch is
// committed.
func (w *writeBehind) take(spare []*applyTx) []*applyTx {
	w.mu.Lock()
	defer w.mu.Unlock()
	batch := w.pending
	w.pending = spare[:0]
	return batch
}

// commit writes what is staged in one transaction, taking it only as the
// transaction runs, so that it holds every Apply staged while it waited
// for another writer's; it records the outcome, and returns the Applies
// written and whether close had been called when it began.
func (w *writeBehind) commit(spare []*applyTx) (batch []*applyTx, stopped bool) {
	w.mu.Lock()
	staged, stopped := len(w.pending) > 0 && w.failed == nil, w.stopped
	w.mu.Unlock()
	if !staged {
		return nil, stopped
	}
	taken := false
	write := func(tx *bolt.Tx) error {
		if !taken { // the DB may run a transaction again: the same batch
			batch, taken = w.take(spare), true
		}
		return writeBatch(tx, batch)
	}
	var err error
	if stopped {
		err = w.db.Update(context.Background(), write)
	} else {
		err = w.db.UpdateWithNext(context.Background(), write, readModelCommitWait, w.hurry)
	}
	w.record(batch, err)
	return batch, stopped
}

// record records the outcome of the commit of batch.
func (w *writeBehind) record(batch []*applyTx, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.failed = fmt.Errorf("commit read models (the store stopped; a restart resumes from the last commit): %w", err)
	} else {
		w.committed += uint64(len(batch))
		for _, a := range batch {
			u := w.uncommitted[a.projection]
			if u.open--; u.open == 0 {
				delete(w.uncommitted, a.projection)
			}
		}
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// writeBatch writes batch's Applies in tx. DB.Update runs it again in a new
// transaction when another writer of its group fails, so it keeps nothing
// from one run to the next: each run finds the buckets and list ends anew.
func writeBatch(tx *bolt.Tx, batch []*applyTx) error {
	bw := newBatchWriter(tx)
	for _, a := range batch {
		if err := bw.write(a); err != nil {
			return fmt.Errorf("read model %q: %w", a.name[1:], err)
		}
	}
	return bw.finish()
}
