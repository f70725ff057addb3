package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Values of run-local's --storage (make run STORAGE=...).
const (
	storageMemory = "memory"
	storageNATS   = "nats"
)

// storagePlan is what run-local does for the storage it was asked for.
type storagePlan struct {
	// args are the manager's storage flags.
	args []string
	// localNATS: run-local starts a NATS server of its own, whose URL is
	// added to args as --nats-url.
	localNATS bool
}

// planStorage reads --storage and --nats-url. With nats and no server
// named (by --nats-url, or by a --nats-url among the manager's own
// arguments after --), run-local starts one.
func planStorage(o options) (storagePlan, error) {
	switch o.storage {
	case storageMemory:
		if o.natsURL != "" {
			return storagePlan{}, errors.New("--nats-url is for --storage=nats (make run STORAGE=nats NATS_URL=...)")
		}
		return storagePlan{}, nil
	case storageNATS:
		p := storagePlan{args: []string{"--storage=nats"}}
		switch {
		case o.natsURL != "":
			p.args = append(p.args, "--nats-url="+o.natsURL)
		case !hasFlag(o.managerArgs, "nats-url"):
			p.localNATS = true
		}
		return p, nil
	default:
		return storagePlan{}, fmt.Errorf("--storage=%q: run-local starts the manager with %s or %s storage "+
			"(other storage: give the manager's flags after --)", o.storage, storageMemory, storageNATS)
	}
}

// hasFlag reports whether args set the flag name, in any of the forms the
// flag package takes.
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		for _, dashes := range []string{"-", "--"} {
			if a == dashes+name || strings.HasPrefix(a, dashes+name+"=") {
				return true
			}
		}
	}
	return false
}

// natsDir is where the NATS server run-local starts keeps its files.
func (o options) natsDir() string { return filepath.Join(o.stateDir, "nats") }

// natsLog is the file that server logs to.
func (o options) natsLog() string { return filepath.Join(o.stateDir, "nats.log") }

// localNATS is a NATS server with JetStream that run-local runs in its own
// process for the manager: nothing to install or build, and it stops with
// run-local.
type localNATS struct {
	srv *server.Server
	dir string
	log string
}

// startNATS starts the server on a free loopback port with its JetStream
// files under dir, emptied first: the local control plane, whose Streams
// and Projections name what is stored, starts empty each time too. The
// server logs to log.
func startNATS(dir, log string) (*localNATS, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("empty the local NATS server's directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
		return nil, err
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "run-local",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   dir,
		LogFile:    log,
		Logtime:    true,
		// Ctrl-C is run-local's to handle: it stops the manager first.
		NoSigs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("configure the local NATS server: %w", err)
	}
	srv.ConfigureLogger()
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("the local NATS server did not accept connections within 30s; see %s", log)
	}
	return &localNATS{srv: srv, dir: dir, log: log}, nil
}

// URL is where clients reach the server.
func (n *localNATS) URL() string { return n.srv.ClientURL() }

// Stop shuts the server down and waits until it has.
func (n *localNATS) Stop() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}
