package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel/readmodeltest"
)

// rmProjection is the projection the helpers below apply to and render.
const rmProjection = "p"

func rmMustApply(t testing.TB, s readmodel.Store, changes []readmodel.Change, cp readmodel.Checkpoint) {
	t.Helper()
	if err := s.Apply(context.Background(), rmProjection, changes, cp); err != nil {
		t.Fatalf("apply to %s: %v", rmProjection, err)
	}
}

func rmDocument(t testing.TB, s readmodel.Store) string {
	t.Helper()
	b, err := s.Document(context.Background(), rmProjection)
	if err != nil {
		t.Fatalf("document %s: %v", rmProjection, err)
	}
	return string(b)
}

func rmWantCheckpoint(t testing.TB, s readmodel.Store, projection string, want readmodel.Checkpoint) {
	t.Helper()
	got, err := s.Checkpoint(context.Background(), projection)
	if err != nil {
		t.Fatalf("checkpoint %s: %v", projection, err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("checkpoint %s: got %v, want %v", projection, got, want)
	}
}

// ownedReadModels are read models that close their DB with themselves, so
// that the suite can open the file again.
type ownedReadModels struct {
	*ReadModels
	db *DB
}

func (s ownedReadModels) Close() error { return errors.Join(s.ReadModels.Close(), s.db.Close()) }

func TestReadModelsConformance(t *testing.T) {
	readmodeltest.Run(t, readmodeltest.Features{Durable: true, ListCheckpoints: true}, func(t *testing.T, dir string) readmodel.Store {
		db, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open(%s): got error %v, want nil", dir, err)
		}
		return ownedReadModels{NewReadModels(db), db}
	})
}

// rmEveryKindOfValue is one Apply of every kind of value and op, with the
// corners of JSON rendering: HTML characters, raw JSON text with spaces,
// floats that render with exponents, an empty key.
var rmEveryKindOfValue = []readmodel.Change{
	{Key: "", Op: readmodel.OpSet, Value: "empty key"},
	{Key: "html <&>", Op: readmodel.OpSet, Value: "<b>&amp;</b>"},
	{Key: "raw", Op: readmodel.OpSet, Value: json.RawMessage(` { "a" : [1, 2.50, "<x>"] } `)},
	{Key: "raw list", Op: readmodel.OpAppend, Value: json.RawMessage(`{"n": 1}`)},
	{Key: "raw list", Op: readmodel.OpAppend, Value: json.RawMessage(`"s"`)},
	{Key: "raw list", Op: readmodel.OpAppend, Value: json.RawMessage("{\"s\":\"a&b\u2028\",\"t\":\"\u2029\"}")},
	{Key: "compact raw", Op: readmodel.OpSet, Value: json.RawMessage(`{"a":"b c","n":[1,2.50,{}]}`)},
	{Key: "compact raw list", Op: readmodel.OpAppend, Value: json.RawMessage(`{"foo":"load","n":1}`)},
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
	{Key: "null then list", Op: readmodel.OpSet, Value: nil},
	{Key: "null then list", Op: readmodel.OpAppend, Value: "x"},
	{Key: "null then count", Op: readmodel.OpSet, Value: nil},
	{Key: "null then count", Op: readmodel.OpIncrement, Delta: 3},
	{Key: "nil list", Op: readmodel.OpSet, Value: []any(nil)},
	{Key: "nil list then append", Op: readmodel.OpSet, Value: []any(nil)},
	{Key: "nil list then append", Op: readmodel.OpAppend, Value: 1.0},
	{Key: "empty list", Op: readmodel.OpSet, Value: []any{}},
	{Key: "set list", Op: readmodel.OpSet, Value: []any{"a", map[string]any{"b": "<"}}},
	{Key: "set list", Op: readmodel.OpAppend, Value: int64(3)},
	{Key: "list then string", Op: readmodel.OpAppend, Value: "gone"},
	{Key: "list then string", Op: readmodel.OpSet, Value: "string"},
	{Key: "string then list", Op: readmodel.OpSet, Value: "gone"},
	{Key: "string then list", Op: readmodel.OpSet, Value: []any{"list"}},
	{Key: "typed slice", Op: readmodel.OpSet, Value: []string{"a"}},
	{Key: "unicode é\u2028", Op: readmodel.OpSet, Value: "\u2028"},
}

func TestDocumentsRenderAsTheMemoryStoreRendersThem(t *testing.T) {
	mem := readmodel.NewMemory()
	disk, _ := openTestReadModels(t)
	for _, s := range []readmodel.Store{mem, disk} {
		rmMustApply(t, s, rmEveryKindOfValue, readmodel.Checkpoint{"s": 1})
		// A second Apply finds the lists and numbers on disk, not in its batch.
		rmMustApply(t, s, []readmodel.Change{
			{Key: "raw list", Op: readmodel.OpAppend, Value: json.RawMessage(`3`)},
			{Key: "float", Op: readmodel.OpIncrement, Delta: -10},
			{Key: "set list", Op: readmodel.OpAppend, Value: "more"},
			{Key: "empty list", Op: readmodel.OpAppend, Value: "first"},
			{Key: "nil list", Op: readmodel.OpAppend, Value: "first"},
		}, readmodel.Checkpoint{"s": 2})
	}
	if got, want := rmDocument(t, disk), rmDocument(t, mem); got != want {
		t.Errorf("document:\ngot  %s\nwant %s", got, want)
	}
}

func TestApplyThatFailsStoresNeitherChangesNorCheckpoint(t *testing.T) {
	disk, _ := openTestReadModels(t)
	seed := []readmodel.Change{
		{Key: "list", Op: readmodel.OpAppend, Value: "x"},
		{Key: "num", Op: readmodel.OpIncrement, Delta: 1},
		{Key: "str", Op: readmodel.OpSet, Value: "s"},
	}
	rmMustApply(t, disk, seed, readmodel.Checkpoint{"s": 1})
	want := rmDocument(t, disk)

	tests := []struct {
		name      string
		bad       []readmodel.Change
		typeClash bool // else the value does not encode, or the change is malformed
	}{
		// The memory store counts raw JSON text as "other", whatever it holds.
		{"increment raw JSON text", []readmodel.Change{
			{Key: "str", Op: readmodel.OpSet, Value: json.RawMessage(`5`)},
			{Key: "str", Op: readmodel.OpIncrement, Delta: 1},
		}, true},
		{"set a channel", []readmodel.Change{{Key: "new", Op: readmodel.OpSet, Value: make(chan int)}}, false},
		{"set NaN", []readmodel.Change{{Key: "new", Op: readmodel.OpSet, Value: math.NaN()}}, false},
		{"append invalid raw JSON", []readmodel.Change{{Key: "list", Op: readmodel.OpAppend, Value: json.RawMessage(`{`)}}, false},
		{"set a list holding +Inf", []readmodel.Change{{Key: "new", Op: readmodel.OpSet, Value: []any{"ok", math.Inf(1)}}}, false},
		{"key too long for bbolt", []readmodel.Change{{Key: strings.Repeat("k", bolt.MaxKeySize), Op: readmodel.OpSet, Value: "v"}}, false},
		{"unknown op", []readmodel.Change{{Key: "new", Op: readmodel.Op(99)}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Valid changes first, one of which makes a list: none may be stored.
			changes := []readmodel.Change{
				{Key: "new", Op: readmodel.OpSet, Value: "v"},
				{Key: "list", Op: readmodel.OpAppend, Value: "z"},
				{Key: "fresh list", Op: readmodel.OpSet, Value: []any{"a"}},
			}
			changes = append(changes, tt.bad...)
			err := disk.Apply(context.Background(), "p", changes, readmodel.Checkpoint{"s": 2, "t": 1})
			if err == nil {
				t.Fatalf("apply %s: got nil, want an error", tt.name)
			}
			if got := errors.Is(err, readmodel.ErrTypeClash); got != tt.typeClash {
				t.Errorf("apply %s: got %v (ErrTypeClash %v), want ErrTypeClash %v", tt.name, err, got, tt.typeClash)
			}
			if got := rmDocument(t, disk); got != want {
				t.Errorf("document after a failed apply: got %s, want %s", got, want)
			}
			rmWantCheckpoint(t, disk, "p", readmodel.Checkpoint{"s": 1})
		})
	}

	t.Run("a new projection is not created", func(t *testing.T) {
		err := disk.Apply(context.Background(), "q", []readmodel.Change{{Key: "k", Op: readmodel.OpSet, Value: math.Inf(-1)}},
			readmodel.Checkpoint{"s": 1})
		if err == nil {
			t.Fatal("apply of -Inf: got nil, want an error")
		}
		if _, err := disk.Document(context.Background(), "q"); !errors.Is(err, readmodel.ErrNotFound) {
			t.Errorf("document after a failed first apply: got %v, want ErrNotFound", err)
		}
		rmWantCheckpoint(t, disk, "q", readmodel.Checkpoint{})
	})

	// Writers that fail and writers that succeed, all at once: the committer
	// may put them in one transaction, which keeps only the successes.
	t.Run("failures sharing a commit", func(t *testing.T) {
		const writers, writes = 8, 20
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range writes {
					ok := (w+i)%2 == 0
					changes := []readmodel.Change{{Key: "shared", Op: readmodel.OpAppend, Value: int64(w)}}
					if !ok {
						changes = append(changes, readmodel.Change{Key: "str", Op: readmodel.OpIncrement, Delta: 1})
					}
					err := disk.Apply(context.Background(), "p", changes, readmodel.Checkpoint{fmt.Sprint("w", w): uint64(i)})
					if ok && err != nil {
						t.Errorf("writer %d apply %d: got %v, want nil", w, i, err)
					}
					if !ok && !errors.Is(err, readmodel.ErrTypeClash) {
						t.Errorf("writer %d apply %d: got %v, want ErrTypeClash", w, i, err)
					}
				}
			})
		}
		wg.Wait()
		var doc struct{ Shared []int }
		if err := json.Unmarshal([]byte(rmDocument(t, disk)), &doc); err != nil {
			t.Fatal(err)
		}
		if got, want := len(doc.Shared), writers*writes/2; got != want {
			t.Errorf("appends kept: got %d, want %d (the successful ones)", got, want)
		}
		cp := readmodel.Checkpoint{"s": 1}
		for w := range writers {
			cp[fmt.Sprint("w", w)] = uint64(writes - 2 + (w % 2)) // each writer's last success
		}
		rmWantCheckpoint(t, disk, "p", cp)
	})
}

func TestDocumentsOfAReadModelWithManyAppendsAreComplete(t *testing.T) {
	const total, batch = 100_000, 1000
	mem := readmodel.NewMemory()
	disk, _ := openTestReadModels(t)
	changes := make([]readmodel.Change, batch)
	for start := 0; start < total; start += batch {
		for i := range changes {
			n := start + i
			changes[i] = readmodel.Change{Key: "items", Op: readmodel.OpAppend, Value: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}
		}
		cp := readmodel.Checkpoint{"s": uint64(start + batch)}
		for _, s := range []readmodel.Store{mem, disk} {
			rmMustApply(t, s, changes, cp)
		}
	}
	got := rmDocument(t, disk)
	if want := rmDocument(t, mem); got != want {
		t.Fatalf("document of %d appends: got %d bytes, want %d bytes equal to the memory store's", total, len(got), len(want))
	}
	var doc struct{ Items []struct{ N int } }
	if err := json.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Items) != total {
		t.Fatalf("items: got %d, want %d", len(doc.Items), total)
	}
	for i, it := range doc.Items {
		if it.N != i {
			t.Fatalf("item %d: got n=%d, want %d", i, it.N, i)
		}
	}
	rmWantCheckpoint(t, disk, "p", readmodel.Checkpoint{"s": total})
}

// An append must write one item, not the list again: lists are nested
// buckets of items under their index.
func TestReadModelAppendsAreItemsOfANestedBucket(t *testing.T) {
	s, db := openTestReadModels(t)
	for i := range 3 {
		rmMustApply(t, s, []readmodel.Change{{Key: "items", Op: readmodel.OpAppend, Value: int64(i)}}, nil)
	}
	if err := s.wb.barrier(context.Background()); err != nil { // the Applies are committed
		t.Fatal(err)
	}
	err := db.View(func(tx *bolt.Tx) error {
		list := tx.Bucket(bucketReadModels).Bucket([]byte(".p")).Bucket(bucketDoc).Bucket([]byte(".items"))
		if list == nil {
			t.Fatal("list: got no nested bucket under readmodels/.p/doc/.items, want one")
		}
		want := 0
		err := list.ForEach(func(k, v []byte) error {
			if got := fmt.Sprintf("%x=%s", k, v); got != fmt.Sprintf("%016x=%d", want, want) {
				t.Errorf("item %d: got %s, want %016x=%d", want, got, want, want)
			}
			want++
			return nil
		})
		if want != 3 {
			t.Errorf("items: got %d, want 3", want)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestClosingTheReadModelsLeavesTheFileOpen(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	s := NewReadModels(db)
	rmMustApply(t, s, nil, readmodel.Checkpoint{"s": 1})
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	rmWantCheckpoint(t, NewReadModels(db), "p", readmodel.Checkpoint{"s": 1})
}

// BenchmarkReadModelApplyAppend is an Append projection's write path: each
// Apply is 100 events appended to one list, with the checkpoint.
func BenchmarkReadModelApplyAppend(b *testing.B) {
	const batch = 100
	s, _ := openTestReadModels(b)
	changes := make([]readmodel.Change, batch)
	payload := json.RawMessage(`{"id":"e-000000","name":"ItemCreated","price":1250,"tags":["a","b"]}`)
	for i := range changes {
		changes[i] = readmodel.Change{Key: "items", Op: readmodel.OpAppend, Value: payload}
	}
	cp := readmodel.Checkpoint{"shop/items": 0}
	applies := 0
	for b.Loop() {
		applies++
		cp["shop/items"] = uint64(applies * batch)
		if err := s.Apply(context.Background(), "ns/items", changes, cp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(applies*batch)/b.Elapsed().Seconds(), "events/s")
}
