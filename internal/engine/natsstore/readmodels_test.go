package natsstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel/readmodeltest"
)

// ownedReadModels are read models that close their connection with
// themselves, as a replica that stops does.
type ownedReadModels struct {
	*ReadModels
	conn *Conn
}

func (s ownedReadModels) Close() error {
	err := s.ReadModels.Close()
	s.conn.Close()
	return err
}

// testPrefix is a prefix of the test's own on the shared server.
func testPrefix(t testing.TB) string { return natstest.Prefix(t.TempDir()) }

// openReadModels connects to the shared test server and opens the read
// models under prefix, as one replica does; they are closed when the test
// ends.
func openReadModels(t testing.TB, prefix string) ownedReadModels {
	t.Helper()
	c, err := Connect(t.Context(), Options{URL: natstest.Shared(t).ClientURL(), Prefix: prefix})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	s, err := NewReadModels(t.Context(), c)
	if err != nil {
		c.Close()
		t.Fatalf("NewReadModels: %v", err)
	}
	o := ownedReadModels{s, c}
	t.Cleanup(func() {
		if err := o.Close(); err != nil && !errors.Is(err, errReadModelsClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return o
}

func TestReadModelsConformance(t *testing.T) {
	readmodeltest.Run(t, readmodeltest.Features{Durable: true, ListCheckpoints: true}, func(t *testing.T, dir string) readmodel.Store {
		c, err := Connect(t.Context(), Options{URL: natstest.Shared(t).ClientURL(), Prefix: natstest.Prefix(dir)})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		s, err := NewReadModels(t.Context(), c)
		if err != nil {
			c.Close()
			t.Fatalf("NewReadModels: %v", err)
		}
		return ownedReadModels{s, c}
	})
}

// rmEveryKindOfValue is one Apply of every kind of value and op, with the
// corners of JSON rendering: HTML characters, raw JSON text with spaces,
// floats that render with exponents, an empty key, lists across chunks.
func rmEveryKindOfValue() []readmodel.Change {
	changes := make([]readmodel.Change, 0, 64+2*chunkItems)
	changes = append(changes, []readmodel.Change{
		{Key: "", Op: readmodel.OpSet, Value: "empty key"},
		{Key: "html <&>", Op: readmodel.OpSet, Value: "<b>&amp;</b>"},
		{Key: "raw", Op: readmodel.OpSet, Value: json.RawMessage(` { "a" : [1, 2.50, "<x>"] } `)},
		{Key: "raw list", Op: readmodel.OpAppend, Value: json.RawMessage(`{"n": 1}`)},
		{Key: "raw list", Op: readmodel.OpAppend, Value: json.RawMessage("{\"s\":\"a&b\u2028\",\"t\":\"\u2029\"}")},
		{Key: "object", Op: readmodel.OpSet, Value: map[string]any{"z": 1.5, "a": []any{true, nil}, "m": int64(-3)}},
		{Key: "int", Op: readmodel.OpSet, Value: 41},
		{Key: "int", Op: readmodel.OpIncrement, Delta: 1},
		{Key: "int64", Op: readmodel.OpSet, Value: int64(math.MaxInt64 - 1)},
		{Key: "int64", Op: readmodel.OpIncrement, Delta: 1},
		{Key: "float", Op: readmodel.OpSet, Value: 0.5},
		{Key: "float", Op: readmodel.OpIncrement, Delta: 2},
		{Key: "big", Op: readmodel.OpSet, Value: 1e21},
		{Key: "small", Op: readmodel.OpSet, Value: -1.5e-9},
		{Key: "zero", Op: readmodel.OpSet, Value: math.Copysign(0, -1)},
		{Key: "null", Op: readmodel.OpSet, Value: nil},
		{Key: "null then count", Op: readmodel.OpSet, Value: nil},
		{Key: "null then count", Op: readmodel.OpIncrement, Delta: 3},
		{Key: "nil list", Op: readmodel.OpSet, Value: []any(nil)},
		{Key: "empty list", Op: readmodel.OpSet, Value: []any{}},
		{Key: "set list", Op: readmodel.OpSet, Value: []any{"a", map[string]any{"b": "<"}}},
		{Key: "list then string", Op: readmodel.OpAppend, Value: "gone"},
		{Key: "list then string", Op: readmodel.OpSet, Value: "string"},
		{Key: "typed slice", Op: readmodel.OpSet, Value: []string{"a"}},
		{Key: "unicode é\u2028.*>", Op: readmodel.OpSet, Value: "\u2028"},
	}...)
	long := make([]any, 3*chunkItems+5)
	for i := range long {
		long[i] = map[string]any{"i": i}
	}
	changes = append(changes, readmodel.Change{Key: "long set list", Op: readmodel.OpSet, Value: long})
	for i := range 2*chunkItems + 3 {
		changes = append(changes, readmodel.Change{Key: "long list", Op: readmodel.OpAppend, Value: i})
	}
	big := strings.Repeat("x", chunkBytes/3)
	for range 5 {
		changes = append(changes, readmodel.Change{Key: "big items", Op: readmodel.OpAppend, Value: big})
	}
	return changes
}

// rmLaterChanges find the lists and numbers committed, not staged.
var rmLaterChanges = [][]readmodel.Change{
	{
		{Key: "raw list", Op: readmodel.OpAppend, Value: json.RawMessage(`3`)},
		{Key: "float", Op: readmodel.OpIncrement, Delta: -10},
		{Key: "set list", Op: readmodel.OpAppend, Value: "more"},
		{Key: "empty list", Op: readmodel.OpAppend, Value: "first"},
		{Key: "nil list", Op: readmodel.OpAppend, Value: "first"},
		{Key: "long set list", Op: readmodel.OpAppend, Value: "after"},
		{Key: "long list", Op: readmodel.OpAppend, Value: "after"},
	},
	// A long list set shorter, then growing again over its old chunks.
	{{Key: "long list", Op: readmodel.OpSet, Value: []any{"short"}}},
	{{Key: "long list", Op: readmodel.OpAppend, Value: "again"}},
	{{Key: "long set list", Op: readmodel.OpSet, Value: "a string now"}},
	{{Key: "list then string", Op: readmodel.OpSet, Value: nil}, {Key: "list then string", Op: readmodel.OpAppend, Value: 1}},
}

func TestDocumentsRenderAsTheMemoryStoreRendersThem(t *testing.T) {
	mem := readmodel.NewMemory()
	onNATS := openReadModels(t, testPrefix(t))
	ctx := t.Context()
	for _, s := range []readmodel.Store{mem, onNATS} {
		if err := s.Apply(ctx, "p", rmEveryKindOfValue(), readmodel.Checkpoint{"s": 1}); err != nil {
			t.Fatal(err)
		}
	}
	compare := func(when string) {
		t.Helper()
		want, err := mem.Document(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		got, err := onNATS.Document(ctx, "p")
		if err != nil || string(got) != string(want) {
			t.Fatalf("document %s:\ngot  %s, %v\nwant %s", when, got, err, want)
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(want, &keys); err != nil {
			t.Fatal(err)
		}
		for k, v := range keys {
			got, found, err := onNATS.Value(ctx, "p", k)
			if err != nil || !found || string(got) != string(v) {
				t.Errorf("value %q %s: got %s, %v, %v; want %s", k, when, got, found, err, v)
			}
		}
	}
	compare("after the first apply")
	for i, changes := range rmLaterChanges {
		for _, s := range []readmodel.Store{mem, onNATS} {
			if err := s.Apply(ctx, "p", changes, readmodel.Checkpoint{"s": uint64(i + 2)}); err != nil {
				t.Fatal(err)
			}
		}
		compare(fmt.Sprintf("after apply %d", i+2))
	}
}

func TestAppendingToALongListRewritesOnlyItsTail(t *testing.T) {
	s := openReadModels(t, testPrefix(t))
	mem := readmodel.NewMemory()
	ctx := t.Context()
	const n = 1000
	for i := range n {
		for _, st := range []readmodel.Store{s, mem} {
			if err := st.Apply(ctx, "p", []readmodel.Change{{Key: "l", Op: readmodel.OpAppend, Value: map[string]any{"n": i}}},
				readmodel.Checkpoint{"s": uint64(i + 1)}); err != nil {
				t.Fatal(err)
			}
		}
		if i%7 == 0 {
			flush(t, s) // commits of a few appends each
		}
	}
	got, err := s.Document(ctx, "p")
	want, _ := mem.Document(ctx, "p")
	if err != nil || string(got) != string(want) {
		t.Fatalf("document: got %.80s..., %v; want %.80s...", got, err, want)
	}
	p := s.projection("p")
	m, err := s.last(ctx, s.l.value(p.gen, "l"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.data) > chunkBytes {
		t.Errorf("the list's value message holds %d bytes after %d appends, want at most %d: the tail only", len(m.data), n, chunkBytes)
	}
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(s.l.keyPrefix(p.gen, "l")+">"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(info.State.Subjects), n/chunkItems+1; got != want {
		t.Errorf("the list has %d subjects, want %d: its value and %d chunks of %d items", got, want, want-1, chunkItems)
	}
}

func TestAnApplyThatCannotBeStoredIsRefusedWholeForGood(t *testing.T) {
	s := openReadModels(t, testPrefix(t))
	ctx := t.Context()
	keys := func(n int) []readmodel.Change {
		changes := make([]readmodel.Change, n)
		for i := range changes {
			changes[i] = readmodel.Change{Key: fmt.Sprint("k", i), Op: readmodel.OpSet, Value: i}
		}
		return changes
	}
	for _, tt := range []struct {
		name     string
		changes  []readmodel.Change
		tooLarge bool // else the error names the value or key
	}{
		{"a key too many for a batch", keys(maxBatch - 2), true},
		{"a list of too many chunks for a batch",
			[]readmodel.Change{{Key: "l", Op: readmodel.OpSet, Value: make([]any, maxBatch*chunkItems)}}, true},
		{"a value larger than a NATS message", []readmodel.Change{{Key: "v", Op: readmodel.OpSet, Value: strings.Repeat("x", 1<<20)}}, false},
		{"a list item larger than a NATS message",
			[]readmodel.Change{{Key: "v", Op: readmodel.OpAppend, Value: strings.Repeat("x", 1<<20)}}, false},
		{"a key too long for a subject", []readmodel.Change{{Key: strings.Repeat("/", maxSubject/3), Op: readmodel.OpSet, Value: 1}}, false},
		{"NaN", []readmodel.Change{{Key: "v", Op: readmodel.OpSet, Value: math.NaN()}}, false},
	} {
		changes := append([]readmodel.Change{{Key: "first", Op: readmodel.OpSet, Value: "fits"}}, tt.changes...)
		err := s.Apply(ctx, "p", changes, readmodel.Checkpoint{"s": 1})
		if err == nil || errors.Is(err, ErrApplyTooLarge) != tt.tooLarge || !engine.IsPermanent(err) {
			t.Errorf("apply %s: got %v; want a permanent error, ErrApplyTooLarge %v", tt.name, err, tt.tooLarge)
		}
	}
	if _, err := s.Document(ctx, "p"); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("document after refused applies: got %v, want ErrNotFound", err)
	}
	// The most a new document takes: its keys, gen entry, head, checkpoint.
	if err := s.Apply(ctx, "p", keys(maxBatch-3), readmodel.Checkpoint{"s": 1}); err != nil {
		t.Fatalf("apply of %d keys: %v", maxBatch-3, err)
	}
	if v, found, err := s.Value(ctx, "p", fmt.Sprint("k", maxBatch-4)); err != nil || !found || string(v) != fmt.Sprint(maxBatch-4) {
		t.Errorf("last key: got %s, %v, %v", v, found, err)
	}
}

// applyCount applies one increment of "n" to projection p with checkpoint
// s=seq.
func applyCount(t *testing.T, s readmodel.Store, seq uint64, extra ...readmodel.Change) error {
	t.Helper()
	return s.Apply(t.Context(), "p", append([]readmodel.Change{{Key: "n", Op: readmodel.OpIncrement, Delta: 1}}, extra...),
		readmodel.Checkpoint{"s": seq})
}

// flush waits for what s staged for p.
func flush(t *testing.T, s ownedReadModels) {
	t.Helper()
	if err := s.flushed(t.Context(), "p"); err != nil {
		t.Fatal(err)
	}
}

func wantState(t *testing.T, s readmodel.Store, doc string, cp readmodel.Checkpoint) {
	t.Helper()
	got, err := s.Document(t.Context(), "p")
	if err != nil || string(got) != doc {
		t.Errorf("document: got %s, %v; want %s", got, err, doc)
	}
	// Checkpoint takes the projection over: read it from the raw stream.
	st, err := s.(ownedReadModels).readState(t.Context(), "p")
	if err != nil || !maps.Equal(st.cp, cp) {
		t.Errorf("checkpoint: got %v, %v; want %v", st.cp, err, cp)
	}
}

func TestASecondWriterOfAProjectionIsFencedAndNothingItSentIsVisible(t *testing.T) {
	prefix := testPrefix(t)
	a, b := openReadModels(t, prefix), openReadModels(t, prefix)
	if err := applyCount(t, a, 1); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	// b takes the projection over, as a new leader does, and applies.
	if cp, err := b.Checkpoint(t.Context(), "p"); err != nil || cp["s"] != 1 {
		t.Fatalf("checkpoint read by the new writer: got %v, %v", cp, err)
	}
	if err := applyCount(t, b, 2); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	// a still believes it owns p: what it sends is refused whole.
	stale := readmodel.Change{Key: "stale", Op: readmodel.OpSet, Value: "from a"}
	err := applyCount(t, a, 2, stale)
	if err == nil {
		flush(t, a) // staged: the batch is refused in the background
		err = applyCount(t, a, 3, stale)
	}
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("apply by the deposed writer: got %v, want ErrFenced", err)
	}
	t.Logf("the deposed writer's error: %v", err)
	wantState(t, b, `{"n":2}`, readmodel.Checkpoint{"s": 2})
	wantState(t, a, `{"n":2}`, readmodel.Checkpoint{"s": 2})
	// It stays fenced, retries included, until it reads the checkpoint.
	if err := applyCount(t, a, 3); !errors.Is(err, ErrFenced) {
		t.Fatalf("apply again by the deposed writer: got %v, want ErrFenced", err)
	}
	wantState(t, b, `{"n":2}`, readmodel.Checkpoint{"s": 2})

	// Taking it back works the same way the other way round.
	if _, err := a.Checkpoint(t.Context(), "p"); err != nil {
		t.Fatal(err)
	}
	if err := applyCount(t, a, 3); err != nil {
		t.Fatalf("apply after taking the projection back: %v", err)
	}
	flush(t, a)
	err = applyCount(t, b, 3)
	if err == nil {
		flush(t, b)
		err = applyCount(t, b, 4)
	}
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("apply by the writer deposed in turn: got %v, want ErrFenced", err)
	}
	wantState(t, a, `{"n":3}`, readmodel.Checkpoint{"s": 3})
}

func TestTwoWritersCreatingAProjectionKeepTheFirst(t *testing.T) {
	prefix := testPrefix(t)
	a, b := openReadModels(t, prefix), openReadModels(t, prefix)
	// Both read that p does not exist yet.
	for _, s := range []ownedReadModels{a, b} {
		if cp, err := s.Checkpoint(t.Context(), "p"); err != nil || len(cp) != 0 {
			t.Fatalf("checkpoint: got %v, %v; want empty", cp, err)
		}
	}
	if err := applyCount(t, a, 1); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	err := applyCount(t, b, 1)
	if err == nil {
		flush(t, b)
		err = applyCount(t, b, 2)
	}
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("the second creation: got %v, want ErrFenced", err)
	}
	wantState(t, b, `{"n":1}`, readmodel.Checkpoint{"s": 1})
}

func TestAMoveByAnotherWriterFencesTheWriterOfEitherProjection(t *testing.T) {
	prefix := testPrefix(t)
	a, b := openReadModels(t, prefix), openReadModels(t, prefix)
	ctx := t.Context()
	for _, name := range []string{"p", "rebuilt"} {
		err := a.Apply(ctx, name, []readmodel.Change{{Key: "of", Op: readmodel.OpSet, Value: name}}, readmodel.Checkpoint{"s": 1})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := a.flushed(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := a.flushed(ctx, "rebuilt"); err != nil {
		t.Fatal(err)
	}
	if err := b.Move(ctx, "rebuilt", "p"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"p", "rebuilt"} {
		err := a.Apply(ctx, name, []readmodel.Change{{Key: "stale", Op: readmodel.OpSet, Value: true}}, nil)
		if err == nil {
			if err := a.flushed(ctx, name); err != nil {
				t.Fatal(err)
			}
			err = a.Apply(ctx, name, []readmodel.Change{{Key: "stale", Op: readmodel.OpSet, Value: true}}, nil)
		}
		if !errors.Is(err, ErrFenced) {
			t.Errorf("apply to %s after another writer's move: got %v, want ErrFenced", name, err)
		}
	}
	wantState(t, b, `{"of":"rebuilt"}`, readmodel.Checkpoint{"s": 1})
	if _, err := b.Document(ctx, "rebuilt"); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("document of the moved projection: got %v, want ErrNotFound", err)
	}
}

func TestReadsSeeWhatAnotherReplicaWrote(t *testing.T) {
	prefix := testPrefix(t)
	w, r := openReadModels(t, prefix), openReadModels(t, prefix)
	ctx := t.Context()
	check := func(when, doc string, cp readmodel.Checkpoint) {
		t.Helper()
		got, err := r.Document(ctx, "p")
		if err != nil || string(got) != doc {
			t.Errorf("document %s: got %s, %v; want %s", when, got, err, doc)
		}
		var want map[string]json.RawMessage
		_ = json.Unmarshal([]byte(doc), &want)
		for k, v := range want {
			if got, found, err := r.Value(ctx, "p", k); err != nil || !found || string(got) != string(v) {
				t.Errorf("value %q %s: got %s, %v, %v; want %s", k, when, got, found, err, v)
			}
		}
		if got, err := r.Checkpoint(ctx, "p"); err != nil || !maps.Equal(got, cp) {
			t.Errorf("checkpoint %s: got %v, %v; want %v", when, got, err, cp)
		}
		all, err := r.Checkpoints(ctx)
		if err != nil || !maps.Equal(all["p"], cp) {
			t.Errorf("checkpoints %s: got %v, %v; want p at %v", when, all, err, cp)
		}
	}
	list := []any{}
	for i := 1; i <= 3*chunkItems; i++ {
		list = append(list, i)
		if err := w.Apply(ctx, "p", []readmodel.Change{
			{Key: "n", Op: readmodel.OpIncrement, Delta: 1},
			{Key: "l", Op: readmodel.OpAppend, Value: i},
			{Key: "last", Op: readmodel.OpSet, Value: i},
		}, readmodel.Checkpoint{"s": uint64(i)}); err != nil {
			t.Fatal(err)
		}
		if i == 1 || i%chunkItems == 0 {
			flush(t, w)
			l, _ := json.Marshal(list)
			check(fmt.Sprint("after apply ", i), fmt.Sprintf(`{"l":%s,"last":%d,"n":%d}`, l, i, i), readmodel.Checkpoint{"s": uint64(i)})
		}
	}
	// r took p over by reading its checkpoint; give it back to w.
	if _, err := w.Checkpoint(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(ctx, "q", []readmodel.Change{{Key: "q", Op: readmodel.OpSet, Value: "q"}}, readmodel.Checkpoint{"t": 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.Move(ctx, "q", "p"); err != nil {
		t.Fatal(err)
	}
	check("after a move", `{"q":"q"}`, readmodel.Checkpoint{"t": 1})
	if err := w.Delete(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Document(ctx, "p"); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("document after a delete: got %v, want ErrNotFound", err)
	}
	if v, found, err := r.Value(ctx, "p", "q"); err != nil || found {
		t.Errorf("value after a delete: got %s, %v, %v; want not found", v, found, err)
	}
}

// streamMsgs counts the messages of the read model stream.
func streamMsgs(t *testing.T, s ownedReadModels) uint64 {
	t.Helper()
	info, err := s.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestMoveAndDeletePurgeTheKeysOfWhatTheyDrop(t *testing.T) {
	s := openReadModels(t, testPrefix(t))
	ctx := t.Context()
	long := make([]any, 5*chunkItems)
	for _, name := range []string{"p", "rebuilt"} {
		if err := s.Apply(ctx, name, []readmodel.Change{
			{Key: "a", Op: readmodel.OpSet, Value: name},
			{Key: "b", Op: readmodel.OpIncrement, Delta: 1},
			{Key: "l", Op: readmodel.OpSet, Value: long},
		}, readmodel.Checkpoint{"s": 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.flushed(ctx, "rebuilt"); err != nil {
		t.Fatal(err)
	}
	if err := s.flushed(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	// Each document: 3 values, 5 chunks, a checkpoint, a head, a gen entry.
	const perDocument = 3 + 5 + 1 + 1 + 1
	if got := streamMsgs(t, s); got != 2*perDocument {
		t.Fatalf("messages before the move: got %d, want %d", got, 2*perDocument)
	}
	if err := s.Move(ctx, "rebuilt", "p"); err != nil {
		t.Fatal(err)
	}
	if got := streamMsgs(t, s); got != perDocument {
		t.Errorf("messages after the move: got %d, want %d (the moved document's)", got, perDocument)
	}
	if err := s.Delete(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if got := streamMsgs(t, s); got != 0 {
		t.Errorf("messages after deleting the last document: got %d, want 0", got)
	}
}

func TestOpeningPurgesWhatAStoppedProcessLeft(t *testing.T) {
	prefix := testPrefix(t)
	s := openReadModels(t, prefix)
	ctx := t.Context()
	if err := applyCount(t, s, 1); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	// What a process that stopped before its purges leaves: a generation
	// no head names, and a head marked deleted.
	l := s.l
	for _, m := range []outMsg{
		{subject: l.genEntry("orphan"), data: []byte("gone")},
		{subject: l.value("orphan", "k"), data: []byte{tagNull}},
		{subject: l.checkpoint("orphan"), data: []byte(`{}`)},
		{subject: l.head("deleted")},
	} {
		if _, err := s.commit(ctx, newGen(), []outMsg{m}); err != nil {
			t.Fatal(err)
		}
	}
	before := streamMsgs(t, s)
	reopened := openReadModels(t, prefix)
	if got, want := streamMsgs(t, reopened), before-4; got != want {
		t.Errorf("messages after reopening: got %d, want %d", got, want)
	}
	wantState(t, reopened, `{"n":1}`, readmodel.Checkpoint{"s": 1})
}

func TestAnUnansweredCommitIsSentAgainAndStoredOnce(t *testing.T) {
	s := openReadModels(t, testPrefix(t))
	lost := 0
	s.loseAnswer = func() bool {
		lost++
		return lost%3 == 1 // the first answer of every third batch
	}
	const applies = 50
	for i := uint64(1); i <= applies; i++ {
		if err := applyCount(t, s, i); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			flush(t, s) // more batches, fewer Applies each
		}
	}
	flush(t, s)
	if lost < 3 {
		t.Fatalf("%d answers lost, want several", lost)
	}
	wantState(t, s, fmt.Sprintf(`{"n":%d}`, applies), readmodel.Checkpoint{"s": applies})
}

func TestReadModelsOnAClusterOfThreeKeepWorkingWhenANodeStops(t *testing.T) {
	c := natstest.StartCluster(t, natstest.Options{})
	open := func() ownedReadModels {
		conn, err := Connect(t.Context(), Options{URL: c.URLs(), Replicas: 3, Prefix: "cluster"})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewReadModels(t.Context(), conn)
		if err != nil {
			t.Fatal(err)
		}
		o := ownedReadModels{s, conn}
		t.Cleanup(func() { _ = o.Close() })
		return o
	}
	w, r := open(), open()
	mem := readmodel.NewMemory()
	apply := func(from, to int) {
		for i := from; i <= to; i++ {
			changes := []readmodel.Change{
				{Key: "n", Op: readmodel.OpIncrement, Delta: 1},
				{Key: "l", Op: readmodel.OpAppend, Value: i},
			}
			for _, s := range []readmodel.Store{w, mem} {
				if err := s.Apply(t.Context(), "p", changes, readmodel.Checkpoint{"s": uint64(i)}); err != nil {
					t.Fatalf("apply %d: %v", i, err)
				}
			}
			if i%50 == 0 {
				flush(t, w)
				want, _ := mem.Document(t.Context(), "p")
				if got, err := r.Document(t.Context(), "p"); err != nil || string(got) != string(want) {
					t.Fatalf("document read on the other replica after apply %d: got %.60s..., %v", i, got, err)
				}
			}
		}
	}
	apply(1, 200)
	c.Stop(0)
	apply(201, 400)
	// The other replica takes p over; the first is fenced.
	if _, err := r.Checkpoint(t.Context(), "p"); err != nil {
		t.Fatal(err)
	}
	if err := applyCount(t, r, 401); err != nil {
		t.Fatal(err)
	}
	flush(t, r)
	err := applyCount(t, w, 401)
	if err == nil {
		flush(t, w)
		err = applyCount(t, w, 402)
	}
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("apply by the deposed writer on a cluster: got %v, want ErrFenced", err)
	}
}

func TestAppliesLostWithTheConnectionAreReportedNotRetriedForever(t *testing.T) {
	s := openReadModels(t, testPrefix(t))
	if err := applyCount(t, s, 1); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	s.conn.Close()
	set := readmodel.Change{Key: "k", Op: readmodel.OpSet, Value: "v"}
	if err := s.Apply(t.Context(), "p", []readmodel.Change{set}, readmodel.Checkpoint{"s": 2}); err != nil {
		t.Fatalf("apply staged before the commit fails: %v", err)
	}
	flush(t, s)
	if err := s.Apply(t.Context(), "p", []readmodel.Change{set}, readmodel.Checkpoint{"s": 3}); err == nil || errors.Is(err, ErrFenced) {
		t.Errorf("apply after a batch was lost: got %v, want the loss", err)
	}
	if err := s.Failure(); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("failure: got %v, want the closed connection", err)
	}
}
