package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
)

// natsSchemes are the URL schemes nats.go dials, each with whether it asks
// for TLS.
var natsSchemes = map[string]bool{"nats": false, "tls": true, "ws": false, "wss": true}

// natsOptions are the --nats-* flags as the NATS store takes them. The
// connection carries the pod's name (its hostname), so the servers'
// monitoring tells the replicas apart.
func (o options) natsOptions() natsstore.Options {
	return natsstore.Options{
		URL:      o.natsURL,
		Creds:    o.natsCreds,
		CA:       o.natsCA,
		Replicas: o.natsReplicas,
		Name:     connectionName(),
	}
}

// natsConnectTimeout bounds the start's wait for JetStream: a manager that
// cannot reach it fails and is restarted, saying why.
const natsConnectTimeout = 30 * time.Second

// openNATS puts the NATS store into cfg: events, read models and
// checkpoints in JetStream, appended straight from every replica
// (core.Appender), the engine standing by until this replica is elected
// (core.Config.Standby). It returns what closes them.
func openNATS(cfg *core.Config, opts options, m *metrics.Metrics) (func() error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), natsConnectTimeout)
	defer cancel()
	no := opts.natsOptions()
	no.ObserveEventsCommit = m.RemoteCommits(metrics.StoreEvents)
	no.ObserveReadModelsCommit = m.RemoteCommits(metrics.StoreReadModels)
	conn, err := natsstore.Connect(ctx, no)
	if err != nil {
		return nil, err
	}
	store, err := natsstore.NewEventStore(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	readModels, err := natsstore.NewReadModels(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	cfg.Store, cfg.Outbox, cfg.Appender, cfg.ReadModels = store, natsstore.NewOutbox(store), store, readModels
	cfg.Standby = true
	o := conn.Options()
	setupLog.Info("NATS storage", "servers", conn.NC.ConnectedUrlRedacted(), "replicas", o.Replicas, "prefix", o.Prefix)
	return func() error {
		err := errors.Join(store.Close(), readModels.Close())
		conn.Close()
		return err
	}, nil
}

// connectionName is the name the manager gives its NATS connection.
func connectionName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "eventsourcing-manager"
	}
	return host
}

// validateNATS checks the --nats-* flags of --storage=nats before anything
// dials: a URL nats.go would refuse, TLS the URLs do not ask for, files that
// are not there.
func (o options) validateNATS() error {
	if o.natsReplicas < 1 || o.natsReplicas > 5 {
		return fmt.Errorf("--nats-replicas=%d: want 1 to 5, JetStream's replication factor (3 for a cluster of three)", o.natsReplicas)
	}
	scheme, err := natsScheme(o.natsURL)
	if err != nil {
		return fmt.Errorf("--nats-url: %w", err)
	}
	if o.natsCA != "" {
		// nats.go would turn TLS on for a CA alone; the URLs say whether
		// the connection is encrypted, so they must say it here too.
		if !natsSchemes[scheme] {
			return fmt.Errorf("--nats-ca is for TLS, and TLS is chosen by the URL: write --nats-url as tls://host:port "+
				"instead of %s://, or drop --nats-ca", scheme)
		}
		if _, err := os.Stat(o.natsCA); err != nil {
			return fmt.Errorf("--nats-ca: %w", err)
		}
	}
	if o.natsCreds != "" {
		if _, err := os.Stat(o.natsCreds); err != nil {
			return fmt.Errorf("--nats-creds: %w", err)
		}
	}
	return nil
}

// natsScheme returns the scheme of the comma-separated server URLs in list,
// read as nats.go reads them (an entry without a scheme is nats://). They
// must share one: a single tls:// URL turns TLS on for every server, and
// nats.go refuses to mix websocket and plain URLs.
func natsScheme(list string) (string, error) {
	var scheme string
	n := 0
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		n++
		if !strings.Contains(entry, "://") {
			entry = "nats://" + entry
		}
		u, err := url.Parse(entry)
		if err != nil {
			// Not the URL itself in the message: it may hold a password.
			return "", fmt.Errorf("server %d is not a URL: want nats://host:port or tls://host:port", n)
		}
		if _, ok := natsSchemes[u.Scheme]; !ok {
			return "", fmt.Errorf("%s: want nats://, tls://, ws:// or wss://", withoutUser(u))
		}
		if u.Hostname() == "" {
			return "", fmt.Errorf("%s names no host", withoutUser(u))
		}
		if scheme != "" && u.Scheme != scheme {
			return "", fmt.Errorf("%s:// and %s:// in one list: give every server the same scheme (tls:// for TLS)", scheme, u.Scheme)
		}
		scheme = u.Scheme
	}
	if n == 0 {
		return "", errors.New("no server: want nats://host:port, or a comma-separated list of a cluster's servers")
	}
	return scheme, nil
}

// withoutUser is u without its user info, which may be a password or a
// token, for messages.
func withoutUser(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}
