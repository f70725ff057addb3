package storebench

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestGroupCommitter appends from many goroutines at once and checks that
// every acknowledged event is stored exactly once under gap-free keys, that
// each Append's events are consecutive, and that Append after Close fails.
func TestGroupCommitter(t *testing.T) {
	db := openBolt(t, t.TempDir())
	g, err := NewGroupCommitter(db, string(eventsBucket))
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, appends, perAppend = 32, 50, 3
	var wg sync.WaitGroup
	for w := range goroutines {
		wg.Go(func() {
			for i := range appends {
				vs := make([][]byte, perAppend)
				for j := range vs {
					vs[j] = fmt.Appendf(nil, "w%d-a%d-e%d", w, i, j)
				}
				first, err := g.Append(vs...)
				if err != nil {
					t.Error(err)
					return
				}
				// Acknowledged means durable and readable at its keys.
				if err := db.View(func(tx *bolt.Tx) error {
					for j, v := range vs {
						got := tx.Bucket(eventsBucket).Get(SeqKey(first + uint64(j)))
						if !bytes.Equal(got, v) {
							return fmt.Errorf("key %d = %q, want %q", first+uint64(j), got, v)
						}
					}
					return nil
				}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Append([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	want := uint64(goroutines * appends * perAppend)
	if err := db.View(func(tx *bolt.Tx) error {
		var n uint64
		c := tx.Bucket(eventsBucket).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
			if !bytes.Equal(k, SeqKey(n)) {
				return fmt.Errorf("key %x at position %d: keys are not gap-free", k, n)
			}
		}
		if n != want {
			return fmt.Errorf("%d events stored, want %d", n, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
