package sinktoken_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/sinktoken"
)

func TestParseAccountReadsNamespaceSlashName(t *testing.T) {
	got, err := sinktoken.ParseAccount("es-system/controller-manager")
	if err != nil || got != manager {
		t.Fatalf("got %+v, %v; want %+v", got, err, manager)
	}
	for _, bad := range []string{"controller-manager", "/x", "es-system/", "a/b/c", "Es/x"} {
		if _, err := sinktoken.ParseAccount(bad); err == nil {
			t.Errorf("ParseAccount(%q) succeeded; want an error", bad)
		}
	}
}

// writeToken writes a JWT with payload (unsigned: only its claims are read).
func writeToken(t *testing.T, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	path := filepath.Join(t.TempDir(), "token")
	jwt := enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(payload)) + "." + enc([]byte("signature"))
	if err := os.WriteFile(path, []byte(jwt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPodAccountIsTheSubjectOfTheMountedToken(t *testing.T) {
	path := writeToken(t, `{"aud":["https://kubernetes.default.svc"],"sub":"system:serviceaccount:es-system:controller-manager"}`)
	got, err := sinktoken.PodAccount(path)
	if err != nil || got != manager {
		t.Fatalf("got %+v, %v; want %+v", got, err, manager)
	}
}

func TestPodAccountRefusesATokenOfNoServiceAccount(t *testing.T) {
	for _, payload := range []string{`{"sub":"alice"}`, `{"sub":"system:serviceaccount:es-system"}`, `not json`} {
		if got, err := sinktoken.PodAccount(writeToken(t, payload)); err == nil {
			t.Errorf("payload %s: got %+v; want an error", payload, got)
		}
	}
}

func TestPodAccountOutsideAPodIsNotExist(t *testing.T) {
	_, err := sinktoken.PodAccount(filepath.Join(t.TempDir(), "token"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v; want os.ErrNotExist", err)
	}
}
