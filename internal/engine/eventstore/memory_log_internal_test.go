package eventstore

import (
	"hash/maphash"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

func TestIDsWhoseHashIsTakenAreFoundInTheClashes(t *testing.T) {
	l := newStreamLog(maphash.MakeSeed())
	var strs stringTable
	now := time.Now()
	var a, b, again engine.Message
	l.pushNew(&a, &engine.Message{ID: "a"}, l.hash("a"), 1, 0, now, &strs, "s")
	// Store b as if its hash were a's, as a 64-bit collision would.
	l.push(&b, &engine.Message{ID: "b"}, 2, 0, now, &strs)
	l.index(b.ID, l.hash("a"), true, b.Sequence)

	for _, want := range []engine.Message{a, b} {
		if seq, ok := l.lookup(want.ID); !ok || seq != want.Sequence {
			t.Errorf("lookup(%q): got %d, %v, want %d, true", want.ID, seq, ok, want.Sequence)
		}
	}
	if _, ok := l.lookup("c"); ok {
		t.Errorf("lookup(\"c\"): got found, want not found")
	}
	if isNew := l.pushNew(&again, &engine.Message{ID: "b"}, l.hash("b"), 3, 0, now, &strs, "s"); isNew || again.Sequence != b.Sequence {
		t.Errorf("pushNew of b again: got sequence %d new %v, want %d and not new", again.Sequence, isNew, b.Sequence)
	}
}

func TestIDIndexFindsEveryHashItStoredAcrossGrowths(t *testing.T) {
	var x idIndex
	const n = 50_000
	// Hashes that share their shard and low bits collide in probing too.
	hashOf := func(i uint64) uint64 { return idHash(i*0x9e3779b97f4a7c15) | 1<<63 }
	for i := range uint64(n) {
		x.put(hashOf(i), i+1)
	}
	for i := range uint64(n) {
		if seq, ok := x.get(hashOf(i)); !ok || seq != i+1 {
			t.Fatalf("get(hash %d): got %d, %v, want %d, true", i, seq, ok, i+1)
		}
	}
	if _, ok := x.get(hashOf(n)); ok {
		t.Fatalf("get of a hash never put: got found, want not found")
	}
}
