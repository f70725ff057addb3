package loadgen

import (
	"bytes"
	"io"
	"mime"
	"net/http"
)

// A Bridge is the least an HTTP ingest onto JetStream can do: it reads each
// POST and publishes it with a bare nats.go client (one connection for
// every request, as the manager's appends share one), then answers 202
// once JetStream has acknowledged it. A single event is one Publish; an
// NDJSON body is a PublishAsync of each line, then a wait for all their
// acknowledgements. No validation, no ids, no headers, no read models: the
// ceiling of "nats.go behind net/http" on a host, for the NATS benchmarks.
type Bridge struct {
	p *natsPublisher
}

// NewBridge connects to the NATS servers at url (a comma-separated list for
// a cluster) to publish to subject, a subject of a stream that exists.
func NewBridge(url, subject string) (*Bridge, error) {
	p := &natsPublisher{subj: subject}
	// Room for 64 clients' batches of 100 in flight at once.
	if err := p.connect(url, 64*100+1); err != nil {
		return nil, err
	}
	return &Bridge{p: p}, nil
}

func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-ndjson" {
		err = b.p.publishLines(bytes.Split(bytes.TrimRight(body, "\n"), []byte("\n")))
	} else {
		err = b.p.publishOne(body)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// Close closes the Bridge's connection.
func (b *Bridge) Close() { b.p.close() }
