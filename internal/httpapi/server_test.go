package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// startServer runs a Server with h on a free loopback port until the test
// ends or stop is called; it returns the base URL and Start's result.
func startServer(t *testing.T, h http.Handler) (url string, stop func() error) {
	t.Helper()
	url, _, stop = startServerReporting(t, h)
	return url, stop
}

// startServerReporting is startServer that also returns the Server.
func startServerReporting(t *testing.T, h http.Handler) (url string, s *Server, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bound := make(chan net.Addr, 1)
	s = &Server{Addr: "127.0.0.1:0", Handler: h, Log: logr.Discard(), ShutdownTimeout: 10 * time.Second,
		listening: func(a net.Addr) { bound <- a }}
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	var addr net.Addr
	select {
	case addr = <-bound:
	case err := <-done:
		t.Fatalf("Start: %v", err)
	}
	stop = func() error { cancel(); return <-done }
	t.Cleanup(func() { cancel() })
	return "http://" + addr.String(), s, stop
}

func TestReadyOnlyWhileTheServerAcceptsConnections(t *testing.T) {
	var before Server
	if before.Ready(nil) == nil {
		t.Fatal("Ready before Start: got nil, want an error (a replica must not join its Service before its API listens)")
	}
	entered, release := make(chan struct{}), make(chan struct{})
	url, s, stop := startServerReporting(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		w.WriteHeader(http.StatusAccepted)
	}))
	if err := s.Ready(nil); err != nil {
		t.Fatalf("Ready while listening: got %v, want nil", err)
	}
	go func() {
		if resp, err := http.Post(url+"/x", "application/json", strings.NewReader(`{}`)); err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Ready(nil) == nil {
		if time.Now().After(deadline) {
			t.Fatal("Ready while draining: still nil 5 s after shutdown began, want an error")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if s.Ready(nil) == nil {
		t.Fatal("Ready after Start returned: got nil, want an error")
	}
}

func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	url, stop := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		w.WriteHeader(http.StatusAccepted)
	}))
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Post(url+"/x", "application/json", strings.NewReader(`{}`))
		if err != nil {
			answered <- 0
			return
		}
		_ = resp.Body.Close()
		answered <- resp.StatusCode
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("Start returned (%v) while a request was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if got := <-answered; got != http.StatusAccepted {
		t.Fatalf("the request in flight got %d, want 202", got)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Start returned %v after a clean shutdown, want nil", err)
	}
	if _, err := http.Get(url + "/x"); err == nil {
		t.Fatal("the server still takes connections after shutdown")
	}
}

func TestOversizedHeadersAreRefused(t *testing.T) {
	url, _ := startServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req, err := http.NewRequest(http.MethodGet, url+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("x", 2*maxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

func TestStartFailsClearlyWhenTheAddressIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	s := &Server{Addr: ln.Addr().String(), Handler: http.NotFoundHandler(), Log: logr.Discard()}
	err = s.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "--ingest-bind-address") {
		t.Fatalf("Start on a taken address: %v, want an error naming --ingest-bind-address", err)
	}
}
