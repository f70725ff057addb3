package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/groupcommit"
)

// disk is an Env whose writes are strings. It records every group written,
// and its sync can be held to let the next group gather.
type disk struct {
	mu      sync.Mutex
	joins   int
	groups  [][]string // written, in order
	applied []string
	syncErr error
	// hold, when set, makes each sync report on syncing and then wait for
	// a value on release.
	hold    bool
	syncing chan struct{}
	release chan struct{}
}

func newDisk() *disk {
	return &disk{syncing: make(chan struct{}, 100), release: make(chan struct{}, 100)}
}

func (d *disk) env() groupcommit.Env[string] {
	return groupcommit.Env[string]{
		Join: func(*string) {
			d.mu.Lock()
			d.joins++
			d.mu.Unlock()
		},
		Write: func(g *groupcommit.Group[string]) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.groups = append(d.groups, slices.Clone(g.Writes()))
			return nil
		},
		Sync: func() error {
			d.mu.Lock()
			hold := d.hold
			d.mu.Unlock()
			if hold {
				d.syncing <- struct{}{}
				<-d.release
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.syncErr
		},
		Apply: func(g *groupcommit.Group[string]) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.applied = append(d.applied, g.Writes()...)
		},
	}
}

func (d *disk) written() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.groups)
}

// start opens a pipeline on env and closes it when the test ends, letting
// go of a held sync first, so that a failed test does not hang in Close.
func start(t *testing.T, d *disk, env groupcommit.Env[string], opts groupcommit.Options) *groupcommit.Pipeline[string] {
	t.Helper()
	p := groupcommit.New(env, opts)
	t.Cleanup(func() {
		d.mu.Lock()
		d.hold = false
		d.mu.Unlock()
		for len(d.release) < cap(d.release) {
			d.release <- struct{}{}
		}
		p.Close()
	})
	return p
}

// commitAsync commits w on its own goroutine; the channel gets the outcome.
func commitAsync(ctx context.Context, p *groupcommit.Pipeline[string], w string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.Commit(ctx, w) }()
	return ch
}

func await(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(enginetest.Timeout):
		t.Fatalf("%s: no outcome within %s", what, enginetest.Timeout)
		return nil
	}
}

func awaitSignal(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(enginetest.Timeout):
		t.Fatalf("%s: not within %s", what, enginetest.Timeout)
	}
}

// waitGathered waits until n writes have joined.
func (d *disk) waitGathered(t *testing.T, n int) {
	t.Helper()
	enginetest.Eventually(t, fmt.Sprintf("%d writes to join", n), func() (bool, string) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.joins >= n, fmt.Sprintf("%d joined", d.joins)
	})
}

// startHeld starts a pipeline whose syncs wait for the test, and commits
// a first write, whose sync it then holds: what the test commits next
// gathers behind it.
func startHeld(t *testing.T, opts groupcommit.Options) (*disk, *groupcommit.Pipeline[string], <-chan error) {
	t.Helper()
	d := newDisk()
	d.hold = true
	p := start(t, d, d.env(), opts)
	first := commitAsync(t.Context(), p, "first")
	awaitSignal(t, "the first sync", d.syncing)
	return d, p, first
}

// nextSync ends the sync being held and waits for the next one to start.
func (d *disk) nextSync(t *testing.T) {
	t.Helper()
	d.release <- struct{}{}
	awaitSignal(t, "the next sync", d.syncing)
}

func TestTheNextGroupGathersWhileTheLastOneSyncsAndIsCommittedInOne(t *testing.T) {
	d, p, first := startHeld(t, groupcommit.Options{})
	rest := make([]<-chan error, 0, 10)
	for i := range 10 {
		rest = append(rest, commitAsync(t.Context(), p, fmt.Sprint(i)))
	}
	d.waitGathered(t, 11)
	d.nextSync(t)
	if err := await(t, "the first write", first); err != nil {
		t.Fatalf("first write: got %v, want nil", err)
	}
	d.release <- struct{}{}
	for i, ch := range rest {
		if err := await(t, fmt.Sprintf("write %d", i), ch); err != nil {
			t.Fatalf("write %d: got %v, want nil", i, err)
		}
	}
	groups := d.written()
	if len(groups) != 2 || len(groups[1]) != 10 {
		t.Fatalf("groups written: got %v, want [first] then the 10 that came during its sync", groups)
	}
	if got := p.Commits(); got != 2 {
		t.Fatalf("Commits: got %d, want 2", got)
	}
}

func TestJoinOrdersTheWritesAsWriteSeesThem(t *testing.T) {
	d := newDisk()
	next := 0
	env := d.env()
	// Numbering under the pipeline's lock: the numbers must come out
	// ascending in every group, and across groups, as the outbox log needs.
	env.Join = func(w *string) {
		next++
		*w = fmt.Sprintf("%06d", next)
	}
	p := start(t, d, env, groupcommit.Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if err := p.Commit(t.Context(), ""); err != nil {
					t.Errorf("Commit: got %v, want nil", err)
					return
				}
			}
		})
	}
	wg.Wait()
	all := slices.Concat(d.written()...)
	if len(all) != 400 || !slices.IsSorted(all) {
		t.Fatalf("writes as Write saw them: got %d, sorted %v; want 400 in the order they were numbered",
			len(all), slices.IsSorted(all))
	}
}

func TestApplyHasRunWhenCommitReturns(t *testing.T) {
	d := newDisk()
	p := start(t, d, d.env(), groupcommit.Options{})
	for i := range 5 {
		w := fmt.Sprint(i)
		if err := p.Commit(t.Context(), w); err != nil {
			t.Fatalf("Commit(%s): got %v, want nil", w, err)
		}
		d.mu.Lock()
		applied := slices.Contains(d.applied, w)
		d.mu.Unlock()
		if !applied {
			t.Fatalf("write %s: not applied when Commit returned", w)
		}
	}
}

func TestAWriteFailedOnItsOwnFailsOnlyItsWriter(t *testing.T) {
	refused := errors.New("refused")
	d := newDisk()
	env := d.env()
	write := env.Write
	env.Write = func(g *groupcommit.Group[string]) error {
		for i, w := range g.Writes() {
			if w == "bad" {
				g.Fail(i, refused)
			}
			if g.Failed(i) != (w == "bad") {
				t.Errorf("Failed(%d) of %q: got %v", i, w, g.Failed(i))
			}
		}
		return write(g)
	}
	p := start(t, d, env, groupcommit.Options{})
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			w := "good"
			if i%2 == 1 {
				w = "bad"
			}
			errs[i] = p.Commit(t.Context(), w)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if bad := i%2 == 1; bad != errors.Is(err, refused) || (!bad && err != nil) {
			t.Errorf("writer %d: got %v, want refused %v", i, err, bad)
		}
	}
}

func TestAFailedSyncFailsEveryWriterOfItsGroupAndNotTheNextGroup(t *testing.T) {
	broken := errors.New("disk gone")
	d, p, first := startHeld(t, groupcommit.Options{})
	d.mu.Lock()
	d.syncErr = broken // the first group's sync fails, once it is released
	d.mu.Unlock()
	second := commitAsync(t.Context(), p, "a")
	third := commitAsync(t.Context(), p, "b")
	d.waitGathered(t, 3)
	d.nextSync(t)
	if err := await(t, "the first write", first); !errors.Is(err, broken) {
		t.Fatalf("first write: got %v, want the sync's error", err)
	}
	d.release <- struct{}{}
	for _, ch := range []<-chan error{second, third} {
		if err := await(t, "a write of the second group", ch); !errors.Is(err, broken) {
			t.Fatalf("write of the failed group: got %v, want the sync's error", err)
		}
	}
	d.mu.Lock()
	d.syncErr, d.hold = nil, false
	applied := len(d.applied)
	d.mu.Unlock()
	if applied != 0 {
		t.Fatalf("groups whose sync failed were applied: %d writes", applied)
	}
	if err := p.Commit(t.Context(), "later"); err != nil {
		t.Fatalf("write after the failures: got %v, want nil (the pipeline keeps no failure)", err)
	}
}

func TestMaxWritesOfOneIsACommitPerWrite(t *testing.T) {
	d := newDisk()
	p := start(t, d, d.env(), groupcommit.Options{MaxWrites: 1, Yield: true})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if err := p.Commit(t.Context(), fmt.Sprint(i)); err != nil {
				t.Errorf("Commit: got %v, want nil", err)
			}
		})
	}
	wg.Wait()
	for _, g := range d.written() {
		if len(g) != 1 {
			t.Fatalf("group of %d writes with MaxWrites 1: %v", len(g), g)
		}
	}
	if got := p.Commits(); got != 16 {
		t.Fatalf("Commits: got %d, want 16", got)
	}
}

func TestAWriterWaitingForRoomHonoursItsContext(t *testing.T) {
	d, p, first := startHeld(t, groupcommit.Options{MaxWrites: 1})
	second := commitAsync(t.Context(), p, "gathered")
	d.waitGathered(t, 2) // the gathered group is full now
	ctx, cancel := context.WithCancel(t.Context())
	third := commitAsync(ctx, p, "waiting")
	time.Sleep(10 * time.Millisecond) // time to reach the wait for room; had it not, it must fail all the same
	cancel()
	if err := await(t, "the write waiting for room", third); !errors.Is(err, context.Canceled) {
		t.Fatalf("write waiting for room, its context cancelled: got %v, want context.Canceled", err)
	}
	d.nextSync(t)
	d.release <- struct{}{}
	for _, ch := range []<-chan error{first, second} {
		if err := await(t, "a joined write", ch); err != nil {
			t.Fatalf("joined write: got %v, want nil", err)
		}
	}
	if got := slices.Concat(d.written()...); !slices.Equal(got, []string{"first", "gathered"}) {
		t.Fatalf("written: got %v, want [first gathered]: the cancelled write must not be", got)
	}
}

func TestCloseCommitsTheWritesThatJoinedAndRefusesLaterOnes(t *testing.T) {
	d, p, first := startHeld(t, groupcommit.Options{})
	second := commitAsync(t.Context(), p, "second")
	d.waitGathered(t, 2)
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	d.nextSync(t)
	d.release <- struct{}{}
	for _, ch := range []<-chan error{first, second} {
		if err := await(t, "a write that joined before Close", ch); err != nil {
			t.Fatalf("write that joined before Close: got %v, want nil", err)
		}
	}
	awaitSignal(t, "Close", closed)
	if err := p.Commit(t.Context(), "late"); !errors.Is(err, groupcommit.ErrClosed) {
		t.Fatalf("Commit after Close: got %v, want ErrClosed", err)
	}
	if got := slices.Concat(d.written()...); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("written: got %v, want [first second]", got)
	}
	p.Close() // again: harmless
}

func TestACancelledContextJoinsNothing(t *testing.T) {
	d := newDisk()
	p := start(t, d, d.env(), groupcommit.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Commit(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit with a cancelled context: got %v, want context.Canceled", err)
	}
	p.Close()
	if got := d.written(); len(got) != 0 {
		t.Fatalf("written: got %v, want nothing", got)
	}
}

// commitWithNextAsync is commitAsync for CommitWithNext.
func commitWithNextAsync(p *groupcommit.Pipeline[string], w string, within time.Duration, hurry <-chan struct{}) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.CommitWithNext(context.Background(), w, within, hurry) }()
	return ch
}

func TestAWriteThatMayWaitIsCommittedWithTheNextWritersGroup(t *testing.T) {
	d := newDisk()
	p := start(t, d, d.env(), groupcommit.Options{})
	lazy := commitWithNextAsync(p, "lazy", time.Hour, nil)
	d.waitGathered(t, 1)
	select {
	case err := <-lazy:
		t.Fatalf("CommitWithNext returned (%v) before any other writer came", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := p.Commit(t.Context(), "eager"); err != nil {
		t.Fatalf("Commit: got %v, want nil", err)
	}
	if err := await(t, "the write that waited", lazy); err != nil {
		t.Fatalf("CommitWithNext: got %v, want nil", err)
	}
	if groups := d.written(); len(groups) != 1 || !slices.Equal(groups[0], []string{"lazy", "eager"}) {
		t.Fatalf("groups written: got %v, want one: [lazy eager]", groups)
	}
}

func TestAWriteThatMayWaitIsCommittedAloneOnceItsTimeHasPassed(t *testing.T) {
	d := newDisk()
	p := start(t, d, d.env(), groupcommit.Options{})
	if err := await(t, "the write that waited", commitWithNextAsync(p, "lazy", 20*time.Millisecond, nil)); err != nil {
		t.Fatalf("CommitWithNext: got %v, want nil", err)
	}
	if groups := d.written(); len(groups) != 1 || !slices.Equal(groups[0], []string{"lazy"}) {
		t.Fatalf("groups written: got %v, want one: [lazy]", groups)
	}
}

func TestAWriteThatMayWaitIsCommittedAtOnceWhenHurried(t *testing.T) {
	d := newDisk()
	p := start(t, d, d.env(), groupcommit.Options{})
	hurry := make(chan struct{}, 1)
	lazy := commitWithNextAsync(p, "lazy", time.Hour, hurry)
	d.waitGathered(t, 1)
	hurry <- struct{}{}
	if err := await(t, "the hurried write", lazy); err != nil {
		t.Fatalf("CommitWithNext: got %v, want nil", err)
	}
}

func TestObserveIsToldOfEachCommittedGroupWithItsWritesAndItsSync(t *testing.T) {
	d := newDisk()
	var mu sync.Mutex
	var writes []int
	var syncs []time.Duration
	env := d.env()
	inner := env.Sync
	env.Sync = func() error {
		time.Sleep(time.Millisecond) // a sync that takes time, as an fdatasync does
		return inner()
	}
	p := start(t, d, env, groupcommit.Options{Observe: func(n int, _, s time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		writes = append(writes, n)
		syncs = append(syncs, s)
	}})
	for i := range 3 {
		if err := p.Commit(t.Context(), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(writes, []int{1, 1, 1}) {
		t.Errorf("writes per observed group: got %v, want [1 1 1] (one per sequential commit)", writes)
	}
	for i, s := range syncs {
		if s < time.Millisecond {
			t.Errorf("group %d: sync observed as %s, want at least the 1ms it took", i, s)
		}
	}
}

func TestObserveReportsNoSyncWhenTheEnvHasNone(t *testing.T) {
	d := newDisk()
	env := d.env()
	env.Sync = nil
	var observed []time.Duration
	p := start(t, d, env, groupcommit.Options{Observe: func(_ int, _, s time.Duration) { observed = append(observed, s) }})
	if err := p.Commit(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	p.Close() // the committer has returned: observed is ours to read
	if !slices.Equal(observed, []time.Duration{0}) {
		t.Errorf("got syncs %v, want one group with a zero sync", observed)
	}
}
