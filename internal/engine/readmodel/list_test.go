package readmodel

import (
	"context"
	"encoding/json"
	"testing"
)

func TestMemoryAppendsAcrossChunksAndOntoASetList(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	if err := m.Apply(ctx, "p", []Change{{Key: "k", Op: OpSet, Value: []any{"a", "b"}}}, nil); err != nil {
		t.Fatal(err)
	}
	const n = 3*listChunk + 7
	for i := range n {
		if err := m.Apply(ctx, "p", []Change{{Key: "k", Op: OpAppend, Value: int64(i)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := m.Document(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string][]any
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatalf("document is not JSON: %v", err)
	}
	list := got["k"]
	if len(list) != n+2 || list[0] != "a" || list[1] != "b" {
		t.Fatalf("list has %d items starting %v, want %d starting a, b", len(list), list[:min(len(list), 2)], n+2)
	}
	for i, v := range list[2:] {
		if v != float64(i) {
			t.Fatalf("list[%d] = %v, want %d", i+2, v, i)
		}
	}
}
