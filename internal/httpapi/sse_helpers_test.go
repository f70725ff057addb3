package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/test/sse"
)

// sseMessage is one thing a live read sent: an event (id, event, data) or
// a comment line.
type sseMessage struct {
	id, event, data string
	comment         string
}

func (m sseMessage) seq(t *testing.T) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(m.id, 10, 64)
	if err != nil {
		t.Fatalf("event id %q is not a number: %v", m.id, err)
	}
	return n
}

func (m sseMessage) view(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(m.data), &v); err != nil {
		t.Fatalf("data %q is not a JSON object: %v", m.data, err)
	}
	return v
}

// sseStream is an open live read, parsed as it arrives.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc
	msgs   chan sseMessage
	// ended is closed once the answer's body has ended.
	ended chan struct{}
	// resume lets a paused stream start reading its body.
	resume func()
}

// openSSE starts a live read of path; headers alternate names and values.
func (a *api) openSSE(path string, headers ...string) *sseStream {
	a.t.Helper()
	return a.openSSEWith(a.server.Client(), false, path, headers...)
}

// openSSEWith opens a live read with client; a paused stream reads nothing
// of the body until resume is called.
func (a *api) openSSEWith(client *http.Client, paused bool, path string, headers ...string) *sseStream {
	t := a.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.server.URL+path, nil)
	must(t, err)
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: status %d, Content-Type %q, want 200 text/event-stream; body: %s",
			path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	s := &sseStream{t: t, resp: resp, cancel: cancel, msgs: make(chan sseMessage, 1<<16), ended: make(chan struct{})}
	gate := make(chan struct{})
	s.resume = func() { close(gate) }
	go s.parse(gate)
	if !paused {
		s.resume()
	}
	t.Cleanup(s.close)
	return s
}

// parse reads the body, one message per event or comment line.
func (s *sseStream) parse(gate <-chan struct{}) {
	defer close(s.ended)
	<-gate
	_ = sse.Read(s.resp.Body, func(m sse.Message) bool {
		s.msgs <- sseMessage{id: m.ID, event: m.Event, data: m.Data, comment: m.Comment}
		return true
	})
}

// next returns the next message, failing the test after 10 s or when the
// answer ends first.
func (s *sseStream) next() sseMessage {
	s.t.Helper()
	select {
	case m := <-s.msgs:
		return m
	default:
	}
	select {
	case m := <-s.msgs:
		return m
	case <-s.ended:
		select {
		case m := <-s.msgs:
			return m
		default:
		}
		s.t.Fatal("the live read ended, want another message")
	case <-time.After(10 * time.Second):
		s.t.Fatal("no message from the live read within 10 s")
	}
	return sseMessage{}
}

// nextEvent returns the next event, skipping heartbeats.
func (s *sseStream) nextEvent() sseMessage {
	s.t.Helper()
	for {
		m := s.next()
		if m.comment == "" {
			return m
		}
		if m.comment != "keep-alive" {
			s.t.Fatalf("comment %q, want an event", m.comment)
		}
	}
}

// waitEnded fails unless the answer's body ends within d.
func (s *sseStream) waitEnded(d time.Duration) {
	s.t.Helper()
	select {
	case <-s.ended:
	case <-time.After(d):
		s.t.Fatalf("the live read still open %s later, want it ended", d)
	}
}

func (s *sseStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
	<-s.ended
}

// smallBufferClient is a client whose connections have small receive
// buffers, so that a reader that stops reading is soon felt by the server.
func smallBufferClient() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tcp, ok := c.(*net.TCPConn)
			if !ok {
				return c, nil
			}
			return c, errors.Join(tcp.SetReadBuffer(4096))
		},
	}}
}
