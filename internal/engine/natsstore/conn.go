// Package natsstore keeps events, read models and checkpoints in NATS
// JetStream (--storage=nats): a store that several manager replicas share.
// See docs/storage.md#nats for the layout and what a 202 means there.
package natsstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	engbackoff "github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
)

// Options say where the JetStream is and how to store in it.
type Options struct {
	// URL is one server URL or a comma-separated list of a cluster's, as
	// nats.go takes them (default nats://127.0.0.1:4222). tls:// turns TLS on.
	URL string
	// Creds is a NATS credentials file (JWT and NKey seed); none when empty.
	Creds string
	// CA is a PEM file of the CAs that sign the servers' certificates; the
	// system's pool when empty.
	CA string
	// Replicas is the replication factor of every stream and bucket this
	// store creates (default 1; 3 for a cluster of three).
	Replicas int
	// Prefix starts the name of every stream and bucket, so several stores
	// (a test's, another installation's) share one JetStream apart
	// (default "es"). Letters, digits, '-' and '_' only.
	Prefix string
	// Name is the connection's name, shown by the server's monitoring.
	Name string
	// Timeout bounds the round trips of one append or commit to JetStream;
	// past it the call fails as unavailable, a 503 the client retries
	// (default 4s: a cluster elects a stream's leader in a second or two).
	Timeout time.Duration
	// ObserveEventsCommit, when set, is told of each group of appends to
	// one stream that JetStream acknowledged: its appends and how long
	// planning, publishing and the acknowledgements took.
	ObserveEventsCommit func(appends int, took time.Duration)
	// ObserveReadModelsCommit, when set, is told of each read-model batch
	// stored: its messages and how long it took, retries included.
	ObserveReadModelsCommit func(messages int, took time.Duration)
}

// DefaultURL is where a NATS server listens by default.
const DefaultURL = nats.DefaultURL

// Conn is one connection to JetStream that the event store and the read
// models share.
type Conn struct {
	NC   *nats.Conn
	JS   jetstream.JetStream
	opts Options
}

// Connect dials the servers and checks that JetStream answers. It keeps
// reconnecting for as long as the Conn is open; calls made meanwhile wait
// or fail with their context.
func Connect(ctx context.Context, o Options) (*Conn, error) {
	if o.URL == "" {
		o.URL = DefaultURL
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Prefix == "" {
		o.Prefix = "es"
	}
	if o.Timeout <= 0 {
		o.Timeout = 4 * time.Second
	}
	if err := validPrefix(o.Prefix); err != nil {
		return nil, err
	}
	if o.Replicas < 1 || o.Replicas > 5 {
		return nil, fmt.Errorf("nats: %d replicas: JetStream takes 1 to 5", o.Replicas)
	}
	nopts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
	}
	if o.Creds != "" {
		nopts = append(nopts, nats.UserCredentials(o.Creds))
	}
	if o.CA != "" {
		nopts = append(nopts, nats.RootCAs(o.CA))
	}
	nc, err := nats.Connect(o.URL, nopts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect to %s: %w", o.URL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, fmt.Errorf("nats: %s has no JetStream: start the servers with JetStream on (-js, or jetstream {} in their config)", o.URL)
		}
		return nil, fmt.Errorf("nats: JetStream at %s: %w", o.URL, err)
	}
	return &Conn{NC: nc, JS: js, opts: o}, nil
}

// Options returns the options the Conn was opened with, defaults filled in.
func (c *Conn) Options() Options { return c.opts }

// Close drains nothing: what was acknowledged is stored; it just hangs up.
func (c *Conn) Close() { c.NC.Close() }

func validPrefix(p string) error {
	if strings.IndexFunc(p, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '_'

	}) >= 0 {
		return fmt.Errorf("nats: prefix %q: letters, digits, '-' and '_' only", p)
	}
	return nil
}

// createAttemptTimeout bounds one request creating a stream. Creating a
// replicated stream takes milliseconds; two replicas creating the same one
// at once can both go unanswered (nats-server 2.15), so a request
// unanswered this long is sent again rather than waited on.
const createAttemptTimeout = 2 * time.Second

// CreateStream creates the stream cfg describes, or updates it to cfg,
// sending the request again while JetStream does not answer, until ctx
// ends. Replicas of the manager start together and all create the same
// streams.
func (c *Conn) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	wait := &engbackoff.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5}
	for {
		actx, cancel := context.WithTimeout(ctx, createAttemptTimeout)
		st, err := c.JS.CreateOrUpdateStream(actx, cfg)
		cancel()
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil || !retryableCreate(err) {
			return nil, fmt.Errorf("nats: create stream %s: %w", cfg.Name, err)
		}
		if werr := wait.Wait(ctx); werr != nil {
			return nil, fmt.Errorf("nats: create stream %s: %w (last attempt: %w)", cfg.Name, werr, err)
		}
	}
}

// retryableCreate reports an error after which the same create may
// succeed: no answer in time, a cluster that is electing a leader, or one
// that has too few servers online for the replicas asked (a node
// restarting, or a cluster still forming). A configuration the server can
// never take fails at once, so that a wrong --nats-replicas says so.
func retryableCreate(err error) bool {
	var je *jetstream.APIError
	if errors.As(err, &je) {
		switch je.ErrorCode {
		case errCodeNoPeers:
			return true
		case errCodeReplicasNotSupported, errCodeInvalidConfig:
			return false
		}
		return je.Code == 503 || je.Code == 500
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// JetStream's error codes that retryableCreate tells apart (nats-server's
// JSClusterNoPeersErrF, JSStreamReplicasNotSupportedErr,
// JSStreamInvalidConfigF).
const (
	errCodeNoPeers              jetstream.ErrorCode = 10005
	errCodeReplicasNotSupported jetstream.ErrorCode = 10074
	errCodeInvalidConfig        jetstream.ErrorCode = 10052
)
