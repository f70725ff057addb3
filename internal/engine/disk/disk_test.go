package disk

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestASecondOpenOfTheSameDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	second, err := Open(dir, Options{})
	if err == nil {
		_ = second.Close()
		t.Fatal("a second Open of a data directory in use succeeded: two managers would write one outbox log")
	}
	if !strings.Contains(err.Error(), "another process") {
		t.Fatalf("error %q does not say another process holds the directory", err)
	}
}

func TestAnOutboxLogThatDoesNotOpenReleasesTheDataFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, outboxDir), []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := Open(dir, Options{}); err == nil {
		_ = st.Close()
		t.Fatal("Open with a file where the outbox log's directory goes: got nil error, want one")
	}
	if err := os.Remove(filepath.Join(dir, outboxDir)); err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after the failed one: got %v, want nil (the data file must not stay locked)", err)
	}
	_ = st.Close()
}
