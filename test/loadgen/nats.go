package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSPublish is where and how a bare nats.go client publishes: every
// client of the Spec shares one connection, as the manager's appends do.
type NATSPublish struct {
	// URL is the server, or a comma-separated list of a cluster's.
	URL string `json:"url"`
	// Subject is a subject of a stream that exists.
	Subject string `json:"subject"`
	// Async publishes each line of the Spec's Body (NDJSON: the events of
	// a batch request) with PublishAsync, then waits for all their
	// acknowledgements; Result.Accepted counts such batches. Otherwise
	// each event is one Publish that waits for its acknowledgement.
	Async bool `json:"async,omitempty"`
}

// natsPublishTimeout bounds one publish or batch: a server that stops
// answering fails the run instead of hanging it.
const natsPublishTimeout = 30 * time.Second

type natsPublisher struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	subj  string
	lines [][]byte // with Async: the messages of each batch
}

func newNATSPublisher(spec Spec) (*natsPublisher, error) {
	o := spec.NATS
	if spec.ReadURL != "" || spec.KeyPrefix != "" || spec.RecordAccepted {
		return nil, errors.New("loadgen: a NATS publish neither follows a stream, nor appends to keys, nor records ids")
	}
	p := &natsPublisher{subj: o.Subject}
	if o.Async {
		p.lines = bytes.Split(bytes.TrimRight(spec.Body, "\n"), []byte("\n"))
		if len(spec.Body) == 0 {
			return nil, errors.New("loadgen: an async NATS publish sends the lines of Spec.Body, and it is empty")
		}
	}
	// Room for every client's whole batch in flight at once, so that no
	// publish waits for room (nats.go allows 4,000 by default).
	if err := p.connect(o.URL, max(1, spec.Clients*len(p.lines))+1); err != nil {
		return nil, err
	}
	return p, nil
}

// connect dials url for p, allowing maxPending asynchronous publishes
// unacknowledged at once.
func (p *natsPublisher) connect(url string, maxPending int) error {
	nc, err := nats.Connect(url, nats.Name("loadgen"))
	if err != nil {
		return fmt.Errorf("loadgen: connect to %s: %w", url, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPending))
	if err != nil {
		nc.Close()
		return err
	}
	p.nc, p.js = nc, js
	return nil
}

// publish sends one event (body) and waits for its acknowledgement, or
// with Async one batch of the Body's lines and waits for all of theirs.
func (p *natsPublisher) publish(body []byte) error {
	if p.lines == nil {
		return p.publishOne(body)
	}
	return p.publishLines(p.lines)
}

// publishOne publishes body and waits for its acknowledgement.
func (p *natsPublisher) publishOne(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), natsPublishTimeout)
	defer cancel()
	if _, err := p.js.Publish(ctx, p.subj, body); err != nil {
		return fmt.Errorf("publish to %s: %w", p.subj, err)
	}
	return nil
}

// publishLines publishes every line with PublishAsync, then waits for
// all their acknowledgements.
func (p *natsPublisher) publishLines(lines [][]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), natsPublishTimeout)
	defer cancel()
	acks := make([]jetstream.PubAckFuture, len(lines))
	for i, line := range lines {
		var err error
		if acks[i], err = p.js.PublishAsync(p.subj, line); err != nil {
			return fmt.Errorf("publish to %s: %w", p.subj, err)
		}
	}
	for _, ack := range acks {
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			return fmt.Errorf("publish to %s: %w", p.subj, err)
		case <-ctx.Done():
			return fmt.Errorf("publish to %s: %w", p.subj, ctx.Err())
		}
	}
	return nil
}

func (p *natsPublisher) close() { p.nc.Close() }
