package boltstore

import (
	"sync"
	"testing"
)

// openTestDB opens the data file in dir and closes it when the test ends,
// after the cleanups registered later (such as a store's Close).
func openTestDB(tb testing.TB, dir string) *DB {
	tb.Helper()
	db, err := Open(dir, Options{})
	if err != nil {
		tb.Fatalf("Open(%s): got error %v, want nil", dir, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("DB.Close: got %v, want nil", err)
		}
	})
	return db
}

// writeConcurrently runs write(w, i) for i < each on each of writers
// goroutines at once, and waits for them; a failing write ends its
// goroutine and the test.
func writeConcurrently(t *testing.T, writers, each int, write func(w, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := write(w, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
