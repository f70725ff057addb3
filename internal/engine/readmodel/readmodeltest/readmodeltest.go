// Package readmodeltest is the conformance suite every readmodel.Store
// backend runs, as Watermill's pub/sub tests are: a backend declares what it
// supports beyond the Store interface (Features) and one Run covers it:
//
//	func TestMemoryConformance(t *testing.T) {
//		readmodeltest.Run(t, readmodeltest.Features{ListCheckpoints: true},
//			func(*testing.T, string) readmodel.Store { return readmodel.NewMemory() })
//	}
package readmodeltest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// Features says what a backend supports beyond readmodel.Store. The
// behaviours that need a feature the backend does not declare are skipped,
// saying which; a declared feature the store lacks fails them.
type Features struct {
	// Durable: documents and checkpoints outlive the store. Once it is
	// closed, opening its dir again gives a store with the same documents,
	// byte for byte, and checkpoints, which Apply continues.
	Durable bool
	// ListCheckpoints: the store implements readmodel.CheckpointLister.
	ListCheckpoints bool
}

// missing names the first feature of needs that f does not declare, "" if
// none.
func (f Features) missing(needs Features) string {
	switch {
	case needs.Durable && !f.Durable:
		return "Durable"
	case needs.ListCheckpoints && !f.ListCheckpoints:
		return "ListCheckpoints"
	}
	return ""
}

// Open returns a store on the storage in dir: an empty one the first time,
// and for a Durable backend, once the last store on dir is closed, what
// that one held. Every subtest gets a dir of its own. A backend that keeps
// nothing on disk ignores dir.
type Open func(t *testing.T, dir string) readmodel.Store

var behaviours = []struct {
	name  string
	needs Features
	run   func(t *testing.T, st *storage)
}{
	{"SetReplacesTheValue", Features{}, on(testSet)},
	{"AppendAddsToTheListInOrder", Features{}, on(testAppend)},
	{"IncrementAddsToTheNumber", Features{}, on(testIncrement)},
	{"TypeClashAppliesNothing", Features{}, on(testTypeClash)},
	{"TypeClashWithinOneApplyAppliesNothing", Features{}, on(testTypeClashWithinBatch)},
	{"CheckpointOnlyApplyCreatesTheDocument", Features{}, on(testCheckpointOnly)},
	{"CheckpointMergesStreams", Features{}, on(testCheckpointMerge)},
	{"CheckpointIsACopy", Features{}, on(testCheckpointCopy)},
	{"CheckpointIsSavedWithStateAtomically", Features{}, on(testAtomicCheckpoint)},
	{"UnknownProjection", Features{}, on(testUnknown)},
	{"DeleteRemovesDocumentAndCheckpoint", Features{}, on(testDelete)},
	{"ProjectionsAreIndependent", Features{}, on(testIndependent)},
	{"ConcurrentApplyOnDifferentProjections", Features{}, on(testConcurrentProjections)},
	{"ApplyHonoursACancelledContext", Features{}, on(testCancelledApply)},
	{"CallsAfterCloseFail", Features{}, on(testCallsAfterClose)},
	{"ValueIsTheKeysValueAsTheDocumentHasIt", Features{}, on(testValue)},
	{"ValueOfAMissingKeyOrProjectionIsNotFound", Features{}, on(testValueNotFound)},
	{"ValueSeesEveryApplyBeforeIt", Features{}, on(testValueSeesApplies)},
	{"MoveReplacesTheDocumentAndCheckpoint", Features{}, on(testMove)},
	{"MoveOfAnUnknownProjectionChangesNothing", Features{}, on(testMoveUnknown)},
	{"CheckpointsListsEveryProjection", Features{ListCheckpoints: true}, on(testCheckpoints)},
	{"CheckpointsListsAMovedProjectionUnderItsNewName", Features{ListCheckpoints: true}, on(testCheckpointsAfterMove)},
	{"DocumentsAndCheckpointsSurviveReopening", Features{Durable: true}, testSurviveReopening},
	{"MoveSurvivesReopening", Features{Durable: true}, testMoveSurvivesReopening},
}

// Run runs every behaviour as a subtest of t, each on storage of its own
// that it opens with open. The suite closes every store it opens when its
// subtest ends, so a backend's Close must be safe to call twice.
func Run(t *testing.T, features Features, open Open) {
	for _, b := range behaviours {
		t.Run(b.name, func(t *testing.T) {
			if f := features.missing(b.needs); f != "" {
				t.Skipf("the backend does not declare Features.%s", f)
			}
			b.run(t, &storage{dir: t.TempDir(), openDir: open, features: features})
		})
	}
}

// storage is a subtest's dir and how to open a store on it.
type storage struct {
	dir      string
	openDir  Open
	features Features
}

// open opens a store on the subtest's dir and closes it when the subtest
// ends.
func (st *storage) open(t *testing.T) readmodel.Store {
	t.Helper()
	s := st.openDir(t, st.dir)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if _, ok := s.(readmodel.CheckpointLister); st.features.ListCheckpoints && !ok {
		t.Fatalf("%T does not implement readmodel.CheckpointLister, yet the backend declares Features.ListCheckpoints", s)
	}
	return s
}

// reopen closes s, the store last opened on the subtest's dir, and opens
// the dir again.
func (st *storage) reopen(t *testing.T, s readmodel.Store) readmodel.Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close before reopening: %v", err)
	}
	return st.open(t)
}

// on runs a behaviour on one store.
func on(test func(t *testing.T, s readmodel.Store)) func(t *testing.T, st *storage) {
	return func(t *testing.T, st *storage) { test(t, st.open(t)) }
}

const proj = "ns/items"

func mustApply(t *testing.T, s readmodel.Store, projection string, changes []readmodel.Change, cp readmodel.Checkpoint) {
	t.Helper()
	if err := s.Apply(t.Context(), projection, changes, cp); err != nil {
		t.Fatalf("apply %v to %s: %v", changes, projection, err)
	}
}

// document decodes the projection's document.
func document(t *testing.T, s readmodel.Store, projection string) map[string]any {
	t.Helper()
	b, err := s.Document(t.Context(), projection)
	if err != nil {
		t.Fatalf("document %s: %v", projection, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("document %s is not a JSON object: %v: %s", projection, err, b)
	}
	return doc
}

func wantDocument(t *testing.T, s readmodel.Store, projection string, want map[string]any) {
	t.Helper()
	if got := document(t, s, projection); !reflect.DeepEqual(got, want) {
		t.Errorf("document %s: got %v, want %v", projection, got, want)
	}
}

func checkpoint(t *testing.T, s readmodel.Store, projection string) readmodel.Checkpoint {
	t.Helper()
	cp, err := s.Checkpoint(t.Context(), projection)
	if err != nil {
		t.Fatalf("checkpoint %s: %v", projection, err)
	}
	return cp
}

func wantCheckpoint(t *testing.T, s readmodel.Store, projection string, want readmodel.Checkpoint) {
	t.Helper()
	if got := checkpoint(t, s, projection); !maps.Equal(got, want) {
		t.Errorf("checkpoint %s: got %v, want %v", projection, got, want)
	}
}

func testSet(t *testing.T, s readmodel.Store) {
	mustApply(t, s, proj, []readmodel.Change{{Key: "a", Op: readmodel.OpSet, Value: map[string]any{"v": "1"}}}, readmodel.Checkpoint{"s": 1})
	mustApply(t, s, proj, []readmodel.Change{{Key: "a", Op: readmodel.OpSet, Value: map[string]any{"v": "2"}}}, readmodel.Checkpoint{"s": 2})
	mustApply(t, s, proj, []readmodel.Change{{Key: "b", Op: readmodel.OpSet, Value: "x"}}, readmodel.Checkpoint{"s": 3})
	wantDocument(t, s, proj, map[string]any{"a": map[string]any{"v": "2"}, "b": "x"})
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"s": 3})
}

func testAppend(t *testing.T, s readmodel.Store) {
	for i := range 3 {
		mustApply(t, s, proj, []readmodel.Change{{Key: "items", Op: readmodel.OpAppend, Value: map[string]any{"n": float64(i)}}},
			readmodel.Checkpoint{"s": uint64(i + 1)})
	}
	mustApply(t, s, proj, []readmodel.Change{{Key: "other", Op: readmodel.OpAppend, Value: "z"}}, nil)
	wantDocument(t, s, proj, map[string]any{
		"items": []any{map[string]any{"n": 0.0}, map[string]any{"n": 1.0}, map[string]any{"n": 2.0}},
		"other": []any{"z"},
	})
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"s": 3})
}

func testIncrement(t *testing.T, s readmodel.Store) {
	mustApply(t, s, proj, []readmodel.Change{
		{Key: "a", Op: readmodel.OpIncrement, Delta: 1},
		{Key: "a", Op: readmodel.OpIncrement, Delta: 1},
		{Key: "b", Op: readmodel.OpIncrement, Delta: -2},
	}, readmodel.Checkpoint{"s": 1})
	mustApply(t, s, proj, []readmodel.Change{{Key: "a", Op: readmodel.OpIncrement, Delta: 5}}, readmodel.Checkpoint{"s": 2})
	wantDocument(t, s, proj, map[string]any{"a": 7.0, "b": -2.0})
	b, err := s.Document(t.Context(), proj)
	if err != nil {
		t.Fatalf("document: %v", err)
	}
	if want := `"a":7`; !bytes.Contains(b, []byte(want)) {
		t.Errorf("document: got %s, want counts as integers (%s)", b, want)
	}
}

// The keys seed fills, one per kind of value.
const (
	keyList = "list"
	keyNum  = "num"
	keyStr  = "str"
)

// seed gives proj a list under "list", a number under "num" and a string
// under "str", at checkpoint s=1.
func seed(t *testing.T, s readmodel.Store) map[string]any {
	t.Helper()
	mustApply(t, s, proj, []readmodel.Change{
		{Key: keyList, Op: readmodel.OpAppend, Value: "x"},
		{Key: keyNum, Op: readmodel.OpIncrement, Delta: 1},
		{Key: keyStr, Op: readmodel.OpSet, Value: "s"},
	}, readmodel.Checkpoint{"s": 1})
	return map[string]any{keyList: []any{"x"}, keyNum: 1.0, keyStr: "s"}
}

func testTypeClash(t *testing.T, s readmodel.Store) {
	want := seed(t, s)
	tests := []struct {
		name  string
		clash readmodel.Change
	}{
		{"append to a number", readmodel.Change{Key: keyNum, Op: readmodel.OpAppend, Value: "y"}},
		{"append to a string", readmodel.Change{Key: keyStr, Op: readmodel.OpAppend, Value: "y"}},
		{"increment a list", readmodel.Change{Key: keyList, Op: readmodel.OpIncrement, Delta: 1}},
		{"increment a string", readmodel.Change{Key: keyStr, Op: readmodel.OpIncrement, Delta: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A valid change first: it must not be applied either.
			changes := []readmodel.Change{{Key: "new", Op: readmodel.OpSet, Value: "v"}, tt.clash}
			err := s.Apply(t.Context(), proj, changes, readmodel.Checkpoint{"s": 2})
			if !errors.Is(err, readmodel.ErrTypeClash) {
				t.Fatalf("apply %v: got %v, want ErrTypeClash", changes, err)
			}
			wantDocument(t, s, proj, want)
			wantCheckpoint(t, s, proj, readmodel.Checkpoint{"s": 1})
		})
	}
}

func testTypeClashWithinBatch(t *testing.T, s readmodel.Store) {
	want := seed(t, s)
	changes := []readmodel.Change{
		{Key: keyList, Op: readmodel.OpSet, Value: "now a string"},
		{Key: keyList, Op: readmodel.OpAppend, Value: "y"},
	}
	err := s.Apply(t.Context(), proj, changes, readmodel.Checkpoint{"s": 2})
	if !errors.Is(err, readmodel.ErrTypeClash) {
		t.Fatalf("apply %v: got %v, want ErrTypeClash", changes, err)
	}
	wantDocument(t, s, proj, want)
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"s": 1})
}

func testCheckpointOnly(t *testing.T, s readmodel.Store) {
	mustApply(t, s, proj, nil, readmodel.Checkpoint{"s": 4})
	wantDocument(t, s, proj, map[string]any{})
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"s": 4})
}

func testCheckpointMerge(t *testing.T, s readmodel.Store) {
	mustApply(t, s, proj, nil, readmodel.Checkpoint{"a": 1, "b": 1})
	mustApply(t, s, proj, nil, readmodel.Checkpoint{"a": 2})
	mustApply(t, s, proj, nil, readmodel.Checkpoint{"c": 5})
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"a": 2, "b": 1, "c": 5})
}

func testCheckpointCopy(t *testing.T, s readmodel.Store) {
	cp := readmodel.Checkpoint{"s": 1}
	mustApply(t, s, proj, nil, cp)
	cp["s"] = 99 // the caller's map is not kept
	got := checkpoint(t, s, proj)
	got["s"] = 100 // nor is the returned one shared
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"s": 1})
}

// testAtomicCheckpoint runs a writer that increments "n" and sets the
// checkpoint to the same number in each Apply, while a reader checks that
// every state it sees lies between the checkpoints read just before and
// just after it. A store that saved state and checkpoint in separate steps
// would let the reader see one without the other.
func testAtomicCheckpoint(t *testing.T, s readmodel.Store) {
	const writes = 500
	mustApply(t, s, proj, nil, readmodel.Checkpoint{"s": 0})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := uint64(1); i <= writes; i++ {
			if err := s.Apply(context.Background(), proj,
				[]readmodel.Change{{Key: "n", Op: readmodel.OpIncrement, Delta: 1}},
				readmodel.Checkpoint{"s": i}); err != nil {
				t.Errorf("apply %d: %v", i, err)
				return
			}
		}
	})
	defer wg.Wait() // a failed read ends the test only once the writer is done
	reads := 0
	for stop := false; !stop; reads++ {
		select {
		case <-done:
			stop = true // one more read after the writer is done
		default:
		}
		before := checkpoint(t, s, proj)["s"]
		n, _ := document(t, s, proj)["n"].(float64)
		after := checkpoint(t, s, proj)["s"]
		if uint64(n) < before || uint64(n) > after {
			t.Fatalf("read %d: state n=%v outside its checkpoints [%d, %d]", reads, n, before, after)
		}
	}
	wantDocument(t, s, proj, map[string]any{"n": float64(writes)})
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"s": writes})
}

func testUnknown(t *testing.T, s readmodel.Store) {
	if _, err := s.Document(t.Context(), "ns/nope"); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("document of an unknown projection: got %v, want ErrNotFound", err)
	}
	cp, err := s.Checkpoint(t.Context(), "ns/nope")
	if err != nil || len(cp) != 0 {
		t.Errorf("checkpoint of an unknown projection: got %v, %v, want empty, nil", cp, err)
	}
}

func testDelete(t *testing.T, s readmodel.Store) {
	seed(t, s)
	mustApply(t, s, "ns/other", []readmodel.Change{{Key: "k", Op: readmodel.OpSet, Value: "v"}}, readmodel.Checkpoint{"s": 1})
	if err := s.Delete(t.Context(), proj); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.Document(t.Context(), proj); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("document after delete: got %v, want ErrNotFound", err)
	}
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{})
	wantDocument(t, s, "ns/other", map[string]any{"k": "v"})
	if err := s.Delete(t.Context(), proj); err != nil {
		t.Errorf("delete again: got %v, want nil", err)
	}
	// A deleted projection starts afresh.
	mustApply(t, s, proj, []readmodel.Change{{Key: keyList, Op: readmodel.OpIncrement, Delta: 1}}, readmodel.Checkpoint{"t": 1})
	wantDocument(t, s, proj, map[string]any{keyList: 1.0})
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"t": 1})
}

func testIndependent(t *testing.T, s readmodel.Store) {
	mustApply(t, s, "ns/a", []readmodel.Change{{Key: "k", Op: readmodel.OpSet, Value: "a"}}, readmodel.Checkpoint{"s": 1})
	mustApply(t, s, "ns/b", []readmodel.Change{{Key: "k", Op: readmodel.OpAppend, Value: "b"}}, readmodel.Checkpoint{"s": 7})
	wantDocument(t, s, "ns/a", map[string]any{"k": "a"})
	wantDocument(t, s, "ns/b", map[string]any{"k": []any{"b"}})
	wantCheckpoint(t, s, "ns/a", readmodel.Checkpoint{"s": 1})
	wantCheckpoint(t, s, "ns/b", readmodel.Checkpoint{"s": 7})
}

func testConcurrentProjections(t *testing.T, s readmodel.Store) {
	const projections, writes = 8, 100
	var wg sync.WaitGroup
	for p := range projections {
		wg.Go(func() {
			name := fmt.Sprintf("ns/p%d", p)
			for i := uint64(1); i <= writes; i++ {
				if err := s.Apply(context.Background(), name, []readmodel.Change{
					{Key: "n", Op: readmodel.OpIncrement, Delta: 1},
					{Key: "seq", Op: readmodel.OpAppend, Value: float64(i)},
				}, readmodel.Checkpoint{"s": i}); err != nil {
					t.Errorf("apply %s %d: %v", name, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for p := range projections {
		name := fmt.Sprintf("ns/p%d", p)
		doc := document(t, s, name)
		if got := doc["n"]; got != float64(writes) {
			t.Errorf("%s: got n=%v, want %d", name, got, writes)
		}
		seq, _ := doc["seq"].([]any)
		for i, v := range seq {
			if v != float64(i+1) {
				t.Fatalf("%s: got seq[%d]=%v, want %d (appends out of order)", name, i, v, i+1)
			}
		}
		if len(seq) != writes {
			t.Errorf("%s: got %d appended values, want %d", name, len(seq), writes)
		}
		wantCheckpoint(t, s, name, readmodel.Checkpoint{"s": writes})
	}
}

func testCancelledApply(t *testing.T, s readmodel.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Apply(ctx, proj, []readmodel.Change{{Key: "k", Op: readmodel.OpSet, Value: "v"}}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("apply with a cancelled context: got %v, want context.Canceled", err)
	}
	if _, err := s.Document(t.Context(), proj); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("document after a cancelled apply: got %v, want ErrNotFound", err)
	}
}

func testCallsAfterClose(t *testing.T, s readmodel.Store) {
	mustApply(t, s, proj, nil, readmodel.Checkpoint{"s": 1})
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("close again: got %v, want nil", err)
	}
	ctx := t.Context()
	if err := s.Apply(ctx, proj, nil, readmodel.Checkpoint{"s": 2}); err == nil {
		t.Errorf("apply after close: got nil, want an error")
	}
	if _, err := s.Document(ctx, proj); err == nil {
		t.Errorf("document after close: got nil, want an error")
	}
	if _, err := s.Checkpoint(ctx, proj); err == nil {
		t.Errorf("checkpoint after close: got nil, want an error")
	}
	if err := s.Delete(ctx, proj); err == nil {
		t.Errorf("delete after close: got nil, want an error")
	}
	if _, _, err := s.Value(ctx, proj, "k"); err == nil {
		t.Errorf("value after close: got nil, want an error")
	}
	if err := s.Move(ctx, proj, "ns/to"); err == nil {
		t.Errorf("move after close: got nil, want an error")
	}
}

func testCheckpoints(t *testing.T, s readmodel.Store) {
	mustApply(t, s, "ns/a", []readmodel.Change{{Key: "k", Op: readmodel.OpSet, Value: "a"}}, readmodel.Checkpoint{"s": 1, "t": 4})
	mustApply(t, s, "ns/b", nil, readmodel.Checkpoint{"s": 7})
	mustApply(t, s, "ns/gone", nil, readmodel.Checkpoint{"s": 9})
	if err := s.Delete(t.Context(), "ns/gone"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	got, err := s.(readmodel.CheckpointLister).Checkpoints(t.Context())
	if err != nil {
		t.Fatalf("checkpoints: %v", err)
	}
	want := map[string]readmodel.Checkpoint{"ns/a": {"s": 1, "t": 4}, "ns/b": {"s": 7}}
	if !maps.EqualFunc(got, want, maps.Equal) {
		t.Fatalf("checkpoints: got %v, want %v", got, want)
	}
}

// reopenCases are the kinds of value a document holds: the changes that
// make one before reopening, a change after, and what the key holds then.
var reopenCases = []struct {
	key    string
	before []readmodel.Change // Key left empty: it is the case's
	after  readmodel.Change
	want   any // as encoding/json decodes it
}{
	{"", set("empty key"), readmodel.Change{Op: readmodel.OpSet, Value: "set again"}, "set again"},
	{"object", set(map[string]any{"z": 1.5, "a": []any{true, nil}}), readmodel.Change{Op: readmodel.OpSet, Value: map[string]any{"b": "<"}},
		map[string]any{"b": "<"}},
	{"raw", set(json.RawMessage(`{"a":[1,2.5]}`)), readmodel.Change{Op: readmodel.OpSet, Value: json.RawMessage(`[3]`)}, []any{3.0}},
	{"count", []readmodel.Change{{Op: readmodel.OpIncrement, Delta: 41}}, readmodel.Change{Op: readmodel.OpIncrement, Delta: 1}, 42.0},
	{"float", []readmodel.Change{{Op: readmodel.OpSet, Value: 0.5}, {Op: readmodel.OpIncrement, Delta: 2}},
		readmodel.Change{Op: readmodel.OpIncrement, Delta: -3}, -0.5},
	{"null", set(nil), readmodel.Change{Op: readmodel.OpAppend, Value: "y"}, []any{"y"}},
	{"nil list", set([]any(nil)), readmodel.Change{Op: readmodel.OpAppend, Value: "x"}, []any{"x"}},
	{"set list", set([]any{"a", map[string]any{"b": "<"}}), readmodel.Change{Op: readmodel.OpAppend, Value: "c"},
		[]any{"a", map[string]any{"b": "<"}, "c"}},
	{"appended", []readmodel.Change{{Op: readmodel.OpAppend, Value: "first"}, {Op: readmodel.OpAppend, Value: map[string]any{"n": 2}}},
		readmodel.Change{Op: readmodel.OpAppend, Value: "third"}, []any{"first", map[string]any{"n": 2.0}, "third"}},
}

// set is a one-change list that sets the value v.
func set(v any) []readmodel.Change { return []readmodel.Change{{Op: readmodel.OpSet, Value: v}} }

func testSurviveReopening(t *testing.T, st *storage) {
	var before []readmodel.Change
	after := make([]readmodel.Change, 0, len(reopenCases))
	for _, c := range reopenCases {
		for _, ch := range c.before {
			ch.Key = c.key
			before = append(before, ch)
		}
		ch := c.after
		ch.Key = c.key
		after = append(after, ch)
	}
	s := st.open(t)
	mustApply(t, s, proj, before, readmodel.Checkpoint{"a": 1, "": 2})
	mustApply(t, s, "ns/gone", set("v"), readmodel.Checkpoint{"a": 1})
	if err := s.Delete(t.Context(), "ns/gone"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	stored, err := s.Document(t.Context(), proj)
	if err != nil {
		t.Fatalf("document: %v", err)
	}

	s = st.reopen(t, s)
	got, err := s.Document(t.Context(), proj)
	if err != nil || !bytes.Equal(got, stored) {
		t.Fatalf("document after reopening: got %s, %v; want %s, nil", got, err, stored)
	}
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"a": 1, "": 2})
	if _, err := s.Document(t.Context(), "ns/gone"); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("document of a projection deleted before reopening: got %v, want ErrNotFound", err)
	}
	// Lists go on where they ended, numbers count on, a null or nil list
	// takes an append.
	mustApply(t, s, proj, after, readmodel.Checkpoint{"a": 3})
	doc := document(t, s, proj)
	for _, c := range reopenCases {
		if !reflect.DeepEqual(doc[c.key], c.want) {
			t.Errorf("document[%q] after applying to the reopened store: got %v, want %v", c.key, doc[c.key], c.want)
		}
	}
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"a": 3, "": 2})
}

// value returns the value under key and whether there is one.
func value(t *testing.T, s readmodel.Store, projection, key string) (string, bool) {
	t.Helper()
	b, found, err := s.Value(t.Context(), projection, key)
	if err != nil {
		t.Fatalf("value %s[%q]: %v", projection, key, err)
	}
	return string(b), found
}

func testValue(t *testing.T, s readmodel.Store) {
	var changes []readmodel.Change
	for _, c := range reopenCases {
		for _, ch := range c.before {
			ch.Key = c.key
			changes = append(changes, ch)
		}
	}
	changes = append(changes, readmodel.Change{Key: "html <&>", Op: readmodel.OpSet, Value: "<b>&amp;</b>"},
		readmodel.Change{Key: "a/b?c", Op: readmodel.OpIncrement, Delta: 2})
	mustApply(t, s, proj, changes, readmodel.Checkpoint{"s": 1})
	b, err := s.Document(t.Context(), proj)
	if err != nil {
		t.Fatalf("document: %v", err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("document %s: %v", b, err)
	}
	for key, want := range doc {
		got, found := value(t, s, proj, key)
		if !found || got != string(want) {
			t.Errorf("value %q: got %s, %v; want %s, true (as in the document %s)", key, got, found, want, b)
		}
	}
}

func testValueNotFound(t *testing.T, s readmodel.Store) {
	seed(t, s)
	for _, c := range []struct{ projection, key string }{{proj, "nope"}, {proj, ""}, {"ns/nope", keyStr}} {
		if got, found := value(t, s, c.projection, c.key); found || got != "" {
			t.Errorf("value %s[%q]: got %q, %v; want nothing, false", c.projection, c.key, got, found)
		}
	}
}

// testValueSeesApplies reads each key back right after every Apply, as a
// Reduce projection does between two events: a value set outright, a count
// and a list must each show every Apply before the read, also while a
// backend has not committed them yet.
func testValueSeesApplies(t *testing.T, s readmodel.Store) {
	const n = 300
	list := "["
	for i := 1; i <= n; i++ {
		mustApply(t, s, proj, []readmodel.Change{
			{Key: "state", Op: readmodel.OpSet, Value: map[string]any{"n": int64(i)}},
			{Key: "count", Op: readmodel.OpIncrement, Delta: 1},
			{Key: "list", Op: readmodel.OpAppend, Value: int64(i)},
		}, readmodel.Checkpoint{"s": uint64(i)})
		if got, want := mustValue(t, s, "state"), fmt.Sprintf(`{"n":%d}`, i); got != want {
			t.Fatalf("after apply %d: state: got %s, want %s", i, got, want)
		}
		if got, want := mustValue(t, s, "count"), fmt.Sprint(i); got != want {
			t.Fatalf("after apply %d: count: got %s, want %s", i, got, want)
		}
		if i > 1 {
			list += ","
		}
		list += fmt.Sprint(i)
		if got, want := mustValue(t, s, "list"), list+"]"; got != want {
			t.Fatalf("after apply %d: list: got %s, want %s", i, got, want)
		}
	}
}

func mustValue(t *testing.T, s readmodel.Store, key string) string {
	t.Helper()
	v, found := value(t, s, proj, key)
	if !found {
		t.Fatalf("value %q: not found", key)
	}
	return v
}

func testMove(t *testing.T, s readmodel.Store) {
	const from, str, more = "ns/items-rebuilt", "now a string", "more"
	seed(t, s)
	mustApply(t, s, from, []readmodel.Change{
		{Key: keyList, Op: readmodel.OpSet, Value: str},
		{Key: more, Op: readmodel.OpAppend, Value: "m"},
	}, readmodel.Checkpoint{"t": 8})
	if err := s.Move(t.Context(), from, proj); err != nil {
		t.Fatalf("move: %v", err)
	}
	want := map[string]any{keyList: str, more: []any{"m"}}
	wantDocument(t, s, proj, want)
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"t": 8})
	if _, err := s.Document(t.Context(), from); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("document of the moved projection: got %v, want ErrNotFound", err)
	}
	wantCheckpoint(t, s, from, readmodel.Checkpoint{})
	if _, found := value(t, s, proj, keyNum); found {
		t.Errorf("value %q of the replaced document: found, want gone", keyNum)
	}
	// The moved document takes Applies as its own: the list goes on, the
	// string refuses an append.
	mustApply(t, s, proj, []readmodel.Change{{Key: more, Op: readmodel.OpAppend, Value: "n"}}, readmodel.Checkpoint{"t": 9})
	err := s.Apply(t.Context(), proj, []readmodel.Change{{Key: keyList, Op: readmodel.OpAppend, Value: "x"}}, nil)
	if !errors.Is(err, readmodel.ErrTypeClash) {
		t.Errorf("append to the moved string: got %v, want ErrTypeClash", err)
	}
	wantDocument(t, s, proj, map[string]any{keyList: str, more: []any{"m", "n"}})
	// A projection that did not exist is created by a Move.
	if err := s.Move(t.Context(), proj, "ns/new"); err != nil {
		t.Fatalf("move to a new name: %v", err)
	}
	wantDocument(t, s, "ns/new", map[string]any{keyList: str, more: []any{"m", "n"}})
	wantCheckpoint(t, s, "ns/new", readmodel.Checkpoint{"t": 9})
}

func testMoveUnknown(t *testing.T, s readmodel.Store) {
	want := seed(t, s)
	if err := s.Move(t.Context(), "ns/nope", proj); !errors.Is(err, readmodel.ErrNotFound) {
		t.Fatalf("move of an unknown projection: got %v, want ErrNotFound", err)
	}
	wantDocument(t, s, proj, want)
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"s": 1})
}

func testCheckpointsAfterMove(t *testing.T, s readmodel.Store) {
	mustApply(t, s, "ns/a", nil, readmodel.Checkpoint{"s": 1})
	mustApply(t, s, "ns/a-rebuilt", nil, readmodel.Checkpoint{"s": 5})
	if err := s.Move(t.Context(), "ns/a-rebuilt", "ns/a"); err != nil {
		t.Fatalf("move: %v", err)
	}
	got, err := s.(readmodel.CheckpointLister).Checkpoints(t.Context())
	if err != nil {
		t.Fatalf("checkpoints: %v", err)
	}
	want := map[string]readmodel.Checkpoint{"ns/a": {"s": 5}}
	if !maps.EqualFunc(got, want, maps.Equal) {
		t.Fatalf("checkpoints: got %v, want %v", got, want)
	}
}

func testMoveSurvivesReopening(t *testing.T, st *storage) {
	s := st.open(t)
	seed(t, s)
	mustApply(t, s, "ns/rebuilt", []readmodel.Change{{Key: "k", Op: readmodel.OpAppend, Value: "v"}}, readmodel.Checkpoint{"s": 3})
	if err := s.Move(t.Context(), "ns/rebuilt", proj); err != nil {
		t.Fatalf("move: %v", err)
	}
	s = st.reopen(t, s)
	wantDocument(t, s, proj, map[string]any{"k": []any{"v"}})
	wantCheckpoint(t, s, proj, readmodel.Checkpoint{"s": 3})
	if _, err := s.Document(t.Context(), "ns/rebuilt"); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("document of the moved projection after reopening: got %v, want ErrNotFound", err)
	}
	mustApply(t, s, proj, []readmodel.Change{{Key: "k", Op: readmodel.OpAppend, Value: "w"}}, readmodel.Checkpoint{"s": 4})
	wantDocument(t, s, proj, map[string]any{"k": []any{"v", "w"}})
}
