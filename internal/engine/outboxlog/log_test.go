package outboxlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox/outboxtest"
)

func TestLogConformance(t *testing.T) {
	features := outboxtest.Features{Durable: true, HasRoom: true, PendingInto: true}
	outboxtest.Run(t, features, func(t *testing.T, dir string, capacity int) outbox.Outbox {
		return openTestLog(t, dir, Options{Capacity: capacity})
	})
}

// openTestLog opens the log in dir and closes it when the test ends.
func openTestLog(t *testing.T, dir string, opts Options) *Log {
	t.Helper()
	ob, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open the outbox log in %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = ob.Close() })
	return ob
}

func testMessages(prefix string, n int) []engine.Message {
	msgs := make([]engine.Message, n)
	for i := range msgs {
		msgs[i] = engine.Message{
			ID: fmt.Sprintf("%s%d", prefix, i), Stream: "s", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Headers: map[string]string{"ce-source": "/x"},
		}
	}
	return msgs
}

// pendingIDs returns the IDs of every pending entry, oldest first.
func pendingIDs(t *testing.T, ob outbox.Outbox) []string {
	t.Helper()
	entries, err := ob.Pending(context.Background(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.Message.ID
	}
	return ids
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestLogStartsNewSegmentsAndDeletesDispatchedOnesOldestFirst(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ob := openTestLog(t, dir, Options{Capacity: 1000, SegmentSize: 256}) // a few entries per segment
	for i := range 40 {
		if err := ob.Enqueue(ctx, testMessages(fmt.Sprintf("e%d-", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	files := segmentFiles(t, dir)
	if len(files) < 5 {
		t.Fatalf("40 entries in segments of 256 bytes: got %d segment files, want several", len(files))
	}
	entries, err := ob.Pending(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Everything but the oldest entry: its segment holds the others' files.
	rest := make([]uint64, 0, len(entries)-1)
	for _, e := range entries[1:] {
		rest = append(rest, e.Position)
	}
	if err := ob.MarkDispatched(ctx, rest); err != nil {
		t.Fatal(err)
	}
	// (The marks may have started another segment.)
	if got := segmentFiles(t, dir); len(got) < len(files) {
		t.Fatalf("with the oldest entry pending: %d segment files left of %d, want all kept", len(got), len(files))
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}

	// The marks in later segments still hold after a restart.
	ob2 := openTestLog(t, dir, Options{Capacity: 1000, SegmentSize: 256})
	if got := pendingIDs(t, ob2); !slices.Equal(got, []string{"e0-0"}) {
		t.Fatalf("pending after reopening: got %v, want only e0-0", got)
	}
	if err := ob2.MarkDispatched(ctx, []uint64{entries[0].Position}); err != nil {
		t.Fatal(err)
	}
	if got := segmentFiles(t, dir); len(got) != 1 {
		t.Fatalf("with everything dispatched: %d segment files left, want only the one written to: %v", len(got), got)
	}
	if err := ob2.Close(); err != nil {
		t.Fatal(err)
	}
	ob3 := openTestLog(t, dir, Options{Capacity: 1000, SegmentSize: 256})
	if got := pendingIDs(t, ob3); len(got) != 0 {
		t.Fatalf("pending after reopening a fully dispatched log: got %v, want none", got)
	}
}

func TestLogDropsAnUnfinishedWriteAtItsEnd(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ob, err := Open(dir, Options{Capacity: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(ctx, testMessages("a", 2)); err != nil {
		t.Fatal(err)
	}
	_ = ob.Close()
	// A crash in the middle of the next write: half a frame at the end.
	files := segmentFiles(t, dir)
	torn := *newEnqueueFrame(testMessages("b", 1))
	setFramePosition(torn, 3)
	sealFrame(torn)
	f, err := os.OpenFile(files[len(files)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(torn[:len(torn)/2]); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	ob2, err := Open(dir, Options{Capacity: 10})
	if err != nil {
		t.Fatalf("reopening after an unfinished write: got %v, want the log without it", err)
	}
	if got := ob2.Recovered(); !strings.Contains(got, files[len(files)-1]) {
		t.Errorf("Recovered: got %q, want it to name %s", got, files[len(files)-1])
	}
	if got := pendingIDs(t, ob2); !slices.Equal(got, []string{"a0", "a1"}) {
		t.Fatalf("pending: got %v, want [a0 a1]", got)
	}
	// What follows is written where the unfinished write began.
	if err := ob2.Enqueue(ctx, testMessages("c", 1)); err != nil {
		t.Fatal(err)
	}
	_ = ob2.Close()
	ob3 := openTestLog(t, dir, Options{Capacity: 10})
	if got := pendingIDs(t, ob3); !slices.Equal(got, []string{"a0", "a1", "c0"}) {
		t.Fatalf("pending after the next reopening: got %v, want [a0 a1 c0]", got)
	}
	if got := ob3.Recovered(); got != "" {
		t.Fatalf("Recovered after a clean close: got %q, want empty", got)
	}
}

func TestLogRefusesToOpenADamagedSegmentAndNamesIt(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ob, err := Open(dir, Options{Capacity: 100, SegmentSize: 256, SyncEachWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := ob.Enqueue(ctx, testMessages(fmt.Sprint(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	_ = ob.Close()
	files := segmentFiles(t, dir)
	if len(files) < 2 {
		t.Fatalf("got %d segment files, want at least 2", len(files))
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(segmentMagic)+frameHeaderSize+3] ^= 0xff // inside the first frame's body
	if err := os.WriteFile(files[0], data, 0o600); err != nil {
		t.Fatal(err)
	}

	_, err = Open(dir, Options{Capacity: 100})
	if err == nil || !strings.Contains(err.Error(), files[0]) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("opening with a damaged first segment: got %v, want an error saying %s is damaged", err, files[0])
	}
	after, _ := os.ReadFile(files[0])
	if !slices.Equal(after, data) {
		t.Fatal("the damaged segment was changed: it must be left as found")
	}
}

func TestLogConcurrentEnqueuersShareFdatasyncs(t *testing.T) {
	ob := openTestLog(t, t.TempDir(), Options{Capacity: 10_000})
	const writers, each = 64, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := ob.Enqueue(context.Background(), testMessages(fmt.Sprintf("w%d-%d-", w, i), 1)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := ob.Len(); got != writers*each {
		t.Fatalf("Len: got %d, want %d", got, writers*each)
	}
	if syncs := ob.Syncs(); syncs >= writers*each {
		t.Fatalf("%d fdatasyncs for %d enqueues: none shared", syncs, writers*each)
	} else {
		t.Logf("%d enqueues in %d fdatasyncs", writers*each, syncs)
	}
}

func TestLogAfterAFailedWriteRefusesEverythingAndKeepsWhatWasAcknowledged(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ob, err := Open(dir, Options{Capacity: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(ctx, testMessages("ok", 1)); err != nil {
		t.Fatal(err)
	}
	// The disk goes away under the committer.
	_ = ob.file.Close()
	err = ob.Enqueue(ctx, testMessages("lost", 1))
	if !errors.Is(err, errBroken) {
		t.Fatalf("Enqueue after a failed write: got %v, want errBroken", err)
	}
	if err := ob.Enqueue(ctx, testMessages("later", 1)); !errors.Is(err, errBroken) {
		t.Fatalf("the next Enqueue: got %v, want errBroken still", err)
	}
	if got := pendingIDs(t, ob); !slices.Equal(got, []string{"ok0"}) {
		t.Fatalf("pending: got %v, want only the acknowledged ok0", got)
	}
	if !ob.HasRoom(9) {
		t.Fatal("the refused enqueues still hold capacity")
	}
	if err := ob.Failure(); !errors.Is(err, errBroken) {
		t.Fatalf("Failure: got %v, want errBroken", err)
	}
	_ = ob.Close()
	ob2 := openTestLog(t, dir, Options{Capacity: 10})
	if got := pendingIDs(t, ob2); !slices.Equal(got, []string{"ok0"}) {
		t.Fatalf("pending after reopening: got %v, want [ok0]", got)
	}
}

func TestLogKeepsASegmentOfMarksWhileAnOlderOneHoldsTheEntriesTheyMark(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ob := openTestLog(t, dir, Options{Capacity: 100, SegmentSize: 1}) // a new segment for (almost) every write
	mark := func(id string) {
		t.Helper()
		entries, err := ob.Pending(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Message.ID == id {
				if err := ob.MarkDispatched(ctx, []uint64{e.Position}); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		t.Fatalf("%s is not pending", id)
	}
	enqueue := func(prefix string, n int) {
		t.Helper()
		if err := ob.Enqueue(ctx, testMessages(prefix, n)); err != nil {
			t.Fatal(err)
		}
	}
	// Segment 1: b0 b1. Segment 2: the mark of b0, c0 and its mark, so
	// nothing in it is pending. Segment 3: d0. b1 keeps segment 1, and
	// segment 2 must stay for b0's mark.
	enqueue("b", 2)
	mark("b0")
	enqueue("c", 1)
	mark("c0")
	enqueue("d", 1)
	if got := len(segmentFiles(t, dir)); got != 3 {
		t.Fatalf("got %d segment files, want 3", got)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	ob2 := openTestLog(t, dir, Options{Capacity: 100, SegmentSize: 1})
	if got := pendingIDs(t, ob2); !slices.Equal(got, []string{"b1", "d0"}) {
		t.Fatalf("pending after reopening: got %v, want [b1 d0]: a mark was deleted before the entry it marks", got)
	}
}

// A crash while a new segment was being created can leave a file shorter
// than its header: nothing was written to it, and the log goes on in the
// segment before it.
func TestLogDropsASegmentWhoseHeaderNeverReachedTheDisk(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ob, err := Open(dir, Options{Capacity: 100, SegmentSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := ob.Enqueue(ctx, testMessages(fmt.Sprint("a", i, "-"), 1)); err != nil {
			t.Fatal(err)
		}
	}
	_ = ob.Close()
	before := segmentFiles(t, dir)
	if len(before) < 2 {
		t.Fatalf("got %d segment files, want at least 2", len(before))
	}
	headerless := segmentPath(dir, 1_000_000)
	if err := os.WriteFile(headerless, []byte("eso"), 0o600); err != nil {
		t.Fatal(err)
	}

	ob2 := openTestLog(t, dir, Options{Capacity: 100, SegmentSize: 256})
	if _, err := os.Stat(headerless); !os.IsNotExist(err) {
		t.Errorf("the headerless segment: got %v, want it removed", err)
	}
	if err := ob2.Enqueue(ctx, testMessages("b", 1)); err != nil {
		t.Fatalf("Enqueue after dropping the headerless segment: got %v, want nil", err)
	}
	want := []string{"a0-0", "a1-0", "a2-0", "a3-0", "a4-0", "a5-0", "b0"}
	if got := pendingIDs(t, ob2); !slices.Equal(got, want) {
		t.Fatalf("pending: got %v, want %v", got, want)
	}
	_ = ob2.Close()
	if got := pendingIDs(t, openTestLog(t, dir, Options{Capacity: 100, SegmentSize: 256})); !slices.Equal(got, want) {
		t.Fatalf("pending after reopening: got %v, want %v", got, want)
	}
}
