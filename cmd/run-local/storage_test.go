package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"

	"github.com/nats-io/nats.go/jetstream"
)

func TestStoragePlanStartsNATSOnlyWhenNoServerIsNamed(t *testing.T) {
	tests := []struct {
		name      string
		o         options
		args      []string
		localNATS bool
	}{
		{"memory", options{storage: "memory"}, nil, false},
		{"nats without a URL", options{storage: "nats"}, []string{"--storage=nats"}, true},
		{"nats with NATS_URL", options{storage: "nats", natsURL: "nats://n0:4222,nats://n1:4222"},
			[]string{"--storage=nats", "--nats-url=nats://n0:4222,nats://n1:4222"}, false},
		{"nats with the manager's own --nats-url", options{storage: "nats", managerArgs: []string{"--nats-url=nats://n0:4222"}},
			[]string{"--storage=nats"}, false},
		{"nats with the manager's own -nats-url and a separate value",
			options{storage: "nats", managerArgs: []string{"-nats-url", "nats://n0:4222"}}, []string{"--storage=nats"}, false},
		{"nats with a flag that only starts like --nats-url", options{storage: "nats", managerArgs: []string{"--nats-urls=x"}},
			[]string{"--storage=nats"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planStorage(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.args, tt.args) || p.localNATS != tt.localNATS {
				t.Fatalf("planStorage(%+v) = %+v; want args %q, localNATS %v", tt.o, p, tt.args, tt.localNATS)
			}
		})
	}
}

func TestStoragePlanRefusesWhatRunLocalCannotStart(t *testing.T) {
	for _, o := range []options{{storage: "disk"}, {storage: "memory", natsURL: "nats://n0:4222"}} {
		if p, err := planStorage(o); err == nil {
			t.Errorf("planStorage(%+v) = %+v, want an error", o, p)
		}
	}
}

func TestManagerArgsLetTheUsersFlagsWin(t *testing.T) {
	o := options{ingestAddr: "127.0.0.1:8080", probeAddr: "127.0.0.1:8081", managerArgs: []string{"--nats-replicas=1"}}
	args := managerArgs(o, []string{"--storage=nats", "--nats-url=nats://127.0.0.1:4222"})
	storage := slices.Index(args, "--storage=nats")
	url := slices.Index(args, "--nats-url=nats://127.0.0.1:4222")
	user := slices.Index(args, "--nats-replicas=1")
	if storage < 0 || url < 0 || user != len(args)-1 || storage > user || url > user {
		t.Fatalf("managerArgs = %q; want the storage flags, then the user's last", args)
	}
	if !slices.Contains(args, "--ingest-auth=none") || !slices.Contains(args, "--ingest-bind-address=127.0.0.1:8080") {
		t.Fatalf("managerArgs = %q; want run-local's own flags too", args)
	}
}

func TestLocalNATSServesJetStreamFromAnEmptiedDirectory(t *testing.T) {
	state := t.TempDir()
	o := options{stateDir: state}
	leftover := filepath.Join(o.natsDir(), "jetstream", "from-the-last-run")
	if err := os.MkdirAll(filepath.Dir(leftover), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leftover, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := startNATS(o.natsDir(), o.natsLog())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if !strings.HasPrefix(srv.URL(), "nats://127.0.0.1:") {
		t.Errorf("URL = %s, want a loopback address", srv.URL())
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("a file of the last run is still there (%v): want the directory emptied", err)
	}

	js := natstest.JetStream(t, srv.URL())
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatalf("create a file stream on the local server: %v", err)
	}
	if _, err := js.Publish(t.Context(), "s", []byte("e")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(o.natsDir(), "jetstream")); err != nil {
		t.Errorf("JetStream's files are not under %s: %v", o.natsDir(), err)
	}
	if log, err := os.ReadFile(o.natsLog()); err != nil || !strings.Contains(string(log), "JetStream") {
		t.Errorf("the server's log %s = %q, %v; want its start-up lines", o.natsLog(), log, err)
	}
}

func TestWalkthroughNamesTheNATSServerRunLocalStarted(t *testing.T) {
	o := options{stateDir: "bin/local", k8sDir: "bin/k8s/v1.2.3", ingestAddr: "127.0.0.1:8080", managerLog: "bin/local/manager.log",
		localNATSURL: "nats://127.0.0.1:40001"}
	text := walkthrough(o, true)
	for _, want := range []string{
		"NATS JetStream at nats://127.0.0.1:40001", "its files in bin/local/nats (emptied at each start)", "its log bin/local/nats.log",
		"Ctrl-C here stops the manager, the NATS server and the local control plane (its objects go with it).\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("walkthrough with a local NATS server lacks %q:\n%s", want, text)
		}
	}
	if text := walkthrough(o, false); !strings.HasSuffix(text, "Ctrl-C here stops the manager and the NATS server.\n") {
		t.Errorf("walkthrough on the user's cluster does not say Ctrl-C stops the NATS server:\n%s", text)
	}
	o.localNATSURL = ""
	if text := walkthrough(o, true); strings.Contains(text, "NATS") {
		t.Errorf("walkthrough without a local NATS server mentions NATS:\n%s", text)
	}
}
