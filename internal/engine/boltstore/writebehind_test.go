package boltstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// holdCommitter occupies db's group committer until the returned function
// is called, so that nothing else commits meanwhile.
func holdCommitter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	held, done := make(chan struct{}), make(chan struct{})
	go func() {
		_ = db.Update(context.Background(), func(*bolt.Tx) error {
			close(held)
			<-done
			return nil
		})
	}()
	<-held
	var released bool
	release = func() {
		if !released {
			released = true
			close(done)
		}
	}
	t.Cleanup(release)
	return release
}

func TestReadModelApplyReturnsBeforeItsCommitAndReadsWaitForIt(t *testing.T) {
	s, db := openTestReadModels(t)
	release := holdCommitter(t, db)

	// Nothing can commit, yet Apply returns: it only stages.
	for i := range 3 {
		rmMustApply(t, s, []readmodel.Change{{Key: "n", Op: readmodel.OpIncrement, Delta: 1}},
			readmodel.Checkpoint{"s": uint64(i + 1)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Document(ctx, "p"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Document while the Applies cannot commit: got error %v, want it to wait (context.DeadlineExceeded)", err)
	}
	release()
	if got, want := rmDocument(t, s), `{"n":3}`; got != want {
		t.Fatalf("document after the commit: got %s, want %s", got, want)
	}
	rmWantCheckpoint(t, s, "p", readmodel.Checkpoint{"s": 3})
}

func TestReadModelApplyRefusesATypeClashWithAStagedChange(t *testing.T) {
	s, db := openTestReadModels(t)
	release := holdCommitter(t, db)

	rmMustApply(t, s, []readmodel.Change{{Key: "k", Op: readmodel.OpIncrement, Delta: 1}}, readmodel.Checkpoint{"s": 1})
	// The increment is staged, not committed: the clash must be found
	// against it, not against the empty document on disk.
	err := s.Apply(context.Background(), rmProjection,
		[]readmodel.Change{{Key: "k", Op: readmodel.OpAppend, Value: "x"}}, readmodel.Checkpoint{"s": 2})
	if !errors.Is(err, readmodel.ErrTypeClash) {
		t.Fatalf("append to a key a staged Apply leaves a number: got error %v, want readmodel.ErrTypeClash", err)
	}
	release()
	if got, want := rmDocument(t, s), `{"k":1}`; got != want {
		t.Fatalf("document: got %s, want %s (the refused Apply left nothing)", got, want)
	}
	rmWantCheckpoint(t, s, "p", readmodel.Checkpoint{"s": 1})
}

func TestReadModelCloseCommitsWhatIsStaged(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewReadModels(db)
	for i := range 100 {
		rmMustApply(t, s, []readmodel.Change{{Key: "items", Op: readmodel.OpAppend, Value: int64(i)}},
			readmodel.Checkpoint{"s": uint64(i + 1)})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := NewReadModels(openTestDB(t, dir))
	t.Cleanup(func() { _ = reopened.Close() })
	rmWantCheckpoint(t, reopened, "p", readmodel.Checkpoint{"s": 100})
}

func TestReadModelFailedCommitStopsTheStore(t *testing.T) {
	s, db := openTestReadModels(t)
	rmMustApply(t, s, []readmodel.Change{{Key: "n", Op: readmodel.OpIncrement, Delta: 1}}, readmodel.Checkpoint{"s": 1})
	rmWantCheckpoint(t, s, rmProjection, readmodel.Checkpoint{"s": 1})
	// A damaged file: the checkpoint bucket is gone, which the check before
	// staging does not read and the commit does.
	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReadModels).Bucket([]byte("." + rmProjection)).DeleteBucket(bucketCheckpoint)
	})
	if err != nil {
		t.Fatal(err)
	}
	rmMustApply(t, s, []readmodel.Change{{Key: "n", Op: readmodel.OpIncrement, Delta: 1}}, readmodel.Checkpoint{"s": 2})
	enginetest.Eventually(t, "Failure to report the staged Apply's failed commit", func() bool { return s.Failure() != nil })
	if !errors.Is(s.Failure(), codec.ErrCorrupt) {
		t.Fatalf("Failure: got %v, want the commit's error (codec.ErrCorrupt)", s.Failure())
	}
	err = s.Apply(context.Background(), rmProjection,
		[]readmodel.Change{{Key: "n", Op: readmodel.OpIncrement, Delta: 1}}, readmodel.Checkpoint{"s": 3})
	if !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("Apply after a failed commit: got error %v, want the commit's failure", err)
	}
	if _, err := s.Document(context.Background(), rmProjection); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("Document after a failed commit: got error %v, want the commit's failure", err)
	}
}

func TestReadModelAppliesCommittedTogetherKeepTheirOrderAndLastCheckpoint(t *testing.T) {
	s, db := openTestReadModels(t)
	release := holdCommitter(t, db)
	const n = 50
	want := make([]string, n)
	for i := range n {
		rmMustApply(t, s, []readmodel.Change{
			{Key: "items", Op: readmodel.OpAppend, Value: int64(i)},
			{Key: "last", Op: readmodel.OpSet, Value: int64(i)},
		}, readmodel.Checkpoint{"a": uint64(i + 1), "b": uint64(2 * (i + 1))})
		want[i] = fmt.Sprint(i)
	}
	release() // the n Applies share one commit
	if got, want := rmDocument(t, s), `{"items":[`+strings.Join(want, ",")+`],"last":49}`; got != want {
		t.Fatalf("document: got %s, want %s", got, want)
	}
	rmWantCheckpoint(t, s, rmProjection, readmodel.Checkpoint{"a": n, "b": 2 * n})
}

func TestReadModelValueSetByAStagedApplyIsReadWithoutWaitingForItsCommit(t *testing.T) {
	s, db := openTestReadModels(t)
	release := holdCommitter(t, db)

	// A Reduce projection's loop: read the key, set the next value.
	for i := range 20 {
		want := fmt.Sprintf(`{"n":%d}`, i)
		if i == 0 {
			want = ""
		}
		got, found, err := s.Value(context.Background(), rmProjection, "state")
		if err != nil || string(got) != want || found != (i > 0) {
			t.Fatalf("value before apply %d: got %s, %v, %v; want %s, %v, nil", i, got, found, err, want, i > 0)
		}
		rmMustApply(t, s, []readmodel.Change{{Key: "state", Op: readmodel.OpSet, Value: map[string]any{"n": int64(i + 1)}}},
			readmodel.Checkpoint{"s": uint64(i + 1)})
	}
	// A key whose staged change depends on the committed value waits.
	rmMustApply(t, s, []readmodel.Change{{Key: "n", Op: readmodel.OpIncrement, Delta: 1}}, readmodel.Checkpoint{"s": 21})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := s.Value(ctx, rmProjection, "n"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("value of an incremented key while it cannot commit: got error %v, want it to wait (context.DeadlineExceeded)", err)
	}
	release()
	if got, found, err := s.Value(context.Background(), rmProjection, "n"); err != nil || !found || string(got) != "1" {
		t.Fatalf("value of the incremented key after the commit: got %s, %v, %v; want 1, true, nil", got, found, err)
	}
}

func TestManyChangesToAKeyInOneCommitLeaveWhatTheMemoryStoreLeaves(t *testing.T) {
	// What the file holds before the commit: a list, numbers and a value.
	seed := []readmodel.Change{
		{Key: "list then values", Op: readmodel.OpAppend, Value: "old"},
		{Key: "list then number", Op: readmodel.OpAppend, Value: "old"},
		{Key: "counted", Op: readmodel.OpIncrement, Delta: 5},
		{Key: "float", Op: readmodel.OpSet, Value: 0.5},
		{Key: "value", Op: readmodel.OpSet, Value: "old"},
	}
	// Each its own Apply, all of them in one commit.
	steps := []readmodel.Change{
		{Key: "counted", Op: readmodel.OpIncrement, Delta: 1},
		{Key: "counted", Op: readmodel.OpIncrement, Delta: 2},
		{Key: "new count", Op: readmodel.OpIncrement, Delta: 1},
		{Key: "float", Op: readmodel.OpIncrement, Delta: 1},
		{Key: "new count", Op: readmodel.OpIncrement, Delta: 1},
		{Key: "counted", Op: readmodel.OpSet, Value: 10},
		{Key: "counted", Op: readmodel.OpIncrement, Delta: -3},
		{Key: "float", Op: readmodel.OpIncrement, Delta: 1},
		{Key: "value", Op: readmodel.OpSet, Value: "a"},
		{Key: "value", Op: readmodel.OpSet, Value: map[string]any{"b": 1}},
		{Key: "list then values", Op: readmodel.OpSet, Value: "s"},
		{Key: "list then values", Op: readmodel.OpSet, Value: nil},
		{Key: "list then values", Op: readmodel.OpAppend, Value: "fresh"},
		{Key: "list then values", Op: readmodel.OpAppend, Value: "fresher"},
		{Key: "list then number", Op: readmodel.OpSet, Value: 7},
		{Key: "list then number", Op: readmodel.OpIncrement, Delta: 1},
		{Key: "value then list", Op: readmodel.OpSet, Value: 1},
		{Key: "value then list", Op: readmodel.OpSet, Value: []any{"x"}},
		{Key: "value then list", Op: readmodel.OpAppend, Value: "y"},
		{Key: "list then value", Op: readmodel.OpAppend, Value: "gone"},
		{Key: "list then value", Op: readmodel.OpSet, Value: "kept"},
		{Key: "null then list", Op: readmodel.OpSet, Value: nil},
		{Key: "null then list", Op: readmodel.OpAppend, Value: 1},
		{Key: "null then count", Op: readmodel.OpSet, Value: nil},
		{Key: "null then count", Op: readmodel.OpIncrement, Delta: 4},
	}
	mem := readmodel.NewMemory()
	rmMustApply(t, mem, seed, readmodel.Checkpoint{"s": 1})
	for i, c := range steps {
		rmMustApply(t, mem, []readmodel.Change{c}, readmodel.Checkpoint{"s": uint64(i + 2)})
	}

	disk, db := openTestReadModels(t)
	rmMustApply(t, disk, seed, readmodel.Checkpoint{"s": 1})
	rmDocument(t, disk) // committed
	// Staged while nothing can commit, the steps are taken together by the
	// transaction that follows.
	release := holdCommitter(t, db)
	for i, c := range steps {
		rmMustApply(t, disk, []readmodel.Change{c}, readmodel.Checkpoint{"s": uint64(i + 2)})
	}
	commits := db.Commits()
	release()
	if got, want := rmDocument(t, disk), rmDocument(t, mem); got != want {
		t.Errorf("document:\ngot  %s\nwant %s", got, want)
	}
	if n := db.Commits() - commits; n != 2 {
		t.Errorf("commits after the release: got %d, want 2 (the held one, then every step in one)", n)
	}
	rmWantCheckpoint(t, disk, rmProjection, readmodel.Checkpoint{"s": uint64(len(steps) + 1)})
}
