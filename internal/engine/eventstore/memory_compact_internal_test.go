package eventstore

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// Compaction frees whole chunks and blocks: what is left is about what the
// retained events need, however many events came before them.
func TestCompactionDropsTheChunksAndBlocksOfCompactedEvents(t *testing.T) {
	m := NewMemory()
	defer func() { _ = m.Close() }()
	const n = 20 * chunkSize
	payload := strings.Repeat("p", 200)
	for i := 0; i < n; i += 1024 {
		batch := make([]engine.Message, 1024)
		for j := range batch {
			batch[j] = engine.Message{ID: fmt.Sprint(i + j), Payload: []byte(payload)}
			if (i+j)%10 == 0 {
				batch[j].Headers = map[string]string{"k": "v"}
			}
		}
		if _, err := m.Append(t.Context(), "s", Any, batch); err != nil {
			t.Fatal(err)
		}
	}
	l := m.streams["s"]
	chunksBefore, blocksBefore := len(l.chunks), len(l.blocks)
	if removed, err := m.Compact(t.Context(), "s", n-100); err != nil || removed != n-101 {
		t.Fatalf("Compact: got %d, %v; want %d, nil", removed, err, n-101)
	}
	if len(l.chunks) != 1 {
		t.Errorf("chunks: got %d (of %d), want 1 for the last 101 events", len(l.chunks), chunksBefore)
	}
	// 101 events of about 210 bytes span at most two blocks.
	if kept := len(l.blocks); kept > 2 || blocksBefore < 10 {
		t.Errorf("blocks: got %d of %d kept, want at most 2 of many", kept, blocksBefore)
	}
	used, slots := 0, 0
	for i := range l.ids.shards {
		used += l.ids.shards[i].used
		slots += len(l.ids.shards[i].slots)
	}
	if used != 101 || slots > 64*minIndexSlots {
		t.Errorf("ID index: got %d entries in %d slots, want 101 in at most %d", used, slots, 64*minIndexSlots)
	}
	got, err := m.Read(t.Context(), "s", 0, 0)
	if err != nil || len(got) != 101 || got[0].Sequence != n-100 || got[0].ID != fmt.Sprint(n-101) ||
		string(got[0].Payload) != payload || got[100].Sequence != n {
		t.Fatalf("Read after compaction: got %d events (%v), want sequences %d..%d with their ids and payloads", len(got), err, n-100, n)
	}
	for _, e := range got {
		var id int
		_, _ = fmt.Sscan(e.ID, &id)
		if want := id%10 == 0; (e.Headers["k"] == "v") != want || (!want && e.Headers != nil) {
			t.Errorf("event %s after compaction: got headers %v, want {k: v} only for ids that are multiples of 10", e.ID, e.Headers)
		}
	}
	// Appending goes on where it was, in the kept block and chunk.
	res, err := m.Append(t.Context(), "s", Exactly(n), []engine.Message{{ID: "next", Payload: []byte(payload)}})
	if err != nil || res.Events[0].Sequence != n+1 {
		t.Fatalf("Append after compaction: got %v, %v; want sequence %d", res.Events, err, n+1)
	}
}

// Removals keep every other hash findable: backward-shift deletion must not
// cut a probe run short.
func TestIDIndexFindsEveryHashLeftAfterRemovals(t *testing.T) {
	var x idIndex
	const n = 20_000
	// Hashes that share their shard and low bits collide in probing too.
	hashOf := func(i uint64) uint64 { return idHash(i*0x9e3779b97f4a7c15) | 1<<63 }
	for i := range uint64(n) {
		x.put(hashOf(i), i+1)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	removed := make(map[uint64]bool)
	for _, i := range rng.Perm(n)[:n*9/10] {
		if !x.remove(hashOf(uint64(i))) {
			t.Fatalf("remove(hash %d): got not found, want removed", i)
		}
		removed[uint64(i)] = true
	}
	x.shrink()
	for i := range uint64(n) {
		seq, ok := x.get(hashOf(i))
		if removed[i] && ok {
			t.Fatalf("get(removed hash %d): got found", i)
		}
		if !removed[i] && (!ok || seq != i+1) {
			t.Fatalf("get(hash %d): got %d, %v, want %d, true", i, seq, ok, i+1)
		}
	}
	if x.remove(hashOf(n)) {
		t.Fatalf("remove of a hash never put: got removed")
	}
}

// An ID whose hash clashed with a compacted ID's is still found.
func TestCompactionKeepsIDsWhoseHashClashedWithACompactedOne(t *testing.T) {
	l := newStreamLog(maphash.MakeSeed())
	var strs stringTable
	var a, b, c engine.Message
	l.pushNew(&a, &engine.Message{ID: "a"}, l.hash("a"), 1, 0, a.Time, &strs, "s")
	// Store b as if its hash were a's, as a 64-bit collision would.
	l.push(&b, &engine.Message{ID: "b"}, 2, 0, a.Time, &strs)
	l.index(b.ID, l.hash("a"), true, b.Sequence)
	l.pushNew(&c, &engine.Message{ID: "c"}, l.hash("c"), 3, 0, a.Time, &strs, "s")
	l.compact(2)
	if _, ok := l.lookup("a"); ok {
		t.Errorf("lookup(\"a\") after its compaction: got found")
	}
	if seq, ok := l.lookup("b"); !ok || seq != 2 {
		t.Errorf("lookup(\"b\"): got %d, %v, want 2, true", seq, ok)
	}
	l.compact(3)
	if _, ok := l.lookup("b"); ok || l.clashes != nil {
		t.Errorf("lookup(\"b\") after its compaction: got found (clashes %v)", l.clashes)
	}
}

// Compaction gives back the memory of a key's compacted sequences, and
// keeps the key's version when none of its events is left.
func TestCompactionDropsTheKeyIndexOfCompactedEventsAndKeepsTheVersion(t *testing.T) {
	m := NewMemory()
	defer func() { _ = m.Close() }()
	const n = 1000
	batch := make([]engine.Message, 0, n+1)
	for i := range n {
		key := "hot"
		if i%2 == 1 {
			key = fmt.Sprint("cold-", i) // one event each, all compacted below
		}
		batch = append(batch, engine.Message{ID: fmt.Sprint(i), Key: key})
	}
	batch = append(batch, engine.Message{ID: "last"})
	if _, err := m.Append(t.Context(), "s", Any, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Compact(t.Context(), "s", n-199); err != nil { // keeps the last 100 of hot
		t.Fatal(err)
	}
	l := m.streams["s"]
	hot := l.keys.get("hot")
	if got := len(hot.retained()); got != 100 || cap(hot.seqs) > 2*got {
		t.Errorf("hot's index: got %d retained in an array of %d, want 100 in at most 200", got, cap(hot.seqs))
	}
	cold := l.keys.get("cold-1")
	if cold.seqs != nil || cold.version != 1 {
		t.Errorf("cold-1 compacted: got %d sequences held, version %d; want none held, version 1", cap(cold.seqs), cold.version)
	}
}
