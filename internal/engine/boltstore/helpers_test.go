package boltstore

import "testing"

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

// openTestReadModels returns read models in a new data file, closed (and
// the file after them) when the test ends.
func openTestReadModels(tb testing.TB) (*ReadModels, *DB) {
	tb.Helper()
	db := openTestDB(tb, tb.TempDir())
	s := NewReadModels(db)
	tb.Cleanup(func() { _ = s.Close() })
	return s, db
}
