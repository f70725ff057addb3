package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// Timeouts and limits of the API's HTTP server. A slow or idle client ties up
// a connection for at most these long.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second // a full batch body at a slow pace
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	// DefaultShutdownTimeout bounds how long Start waits for in-flight
	// requests once asked to stop.
	DefaultShutdownTimeout = 25 * time.Second
)

// Server serves a Handler on an address until its context ends, then stops
// taking connections and lets the requests in flight finish. It is a
// controller-runtime Runnable.
type Server struct {
	Addr    string
	Handler http.Handler
	// ShutdownTimeout bounds the wait for requests in flight (default
	// DefaultShutdownTimeout); it must end before the manager's own
	// graceful-shutdown timeout.
	ShutdownTimeout time.Duration
	Log             logr.Logger
	// listening, when set, is called with the bound address once the
	// server accepts connections (tests bind port 0).
	listening func(net.Addr)
	// serving is true from the moment the server accepts connections until
	// it starts to shut down (Ready).
	serving atomic.Bool
}

// errNotServing is Ready's answer before Start listens and once it drains.
var errNotServing = errors.New("the HTTP API is not accepting connections")

// Ready is a readiness check: nil only while the server accepts
// connections. The manager starts its probes before its other runnables,
// so without it a replica would be ready, and in its Service, before its
// HTTP API listens.
func (s *Server) Ready(*http.Request) error {
	if !s.serving.Load() {
		return errNotServing
	}
	return nil
}

// Start listens on s.Addr and serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen on --ingest-bind-address %q: %w", s.Addr, err)
	}
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	// Live reads and long polls would hold the drain until its timeout:
	// they watch this context, which ends as the shutdown begins.
	stopping, stop := context.WithCancel(context.Background())
	defer stop()
	srv.BaseContext = func(net.Listener) context.Context {
		return context.WithValue(context.Background(), stoppingKey{}, stopping)
	}
	srv.RegisterOnShutdown(stop)
	// Connections queue on the listener from here on, so it is ready.
	s.serving.Store(true)
	defer s.serving.Store(false)
	if s.listening != nil {
		s.listening(ln.Addr())
	}
	s.Log.Info("serving the HTTP API", "address", ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve the HTTP API: %w", err)
	case <-ctx.Done():
	}
	s.serving.Store(false)
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	// ctx is done: the drain needs a context of its own.
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	s.Log.Info("HTTP API stopping: finishing requests in flight")
	if err := srv.Shutdown(drainCtx); err != nil {
		return fmt.Errorf("finish HTTP requests in flight: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve the HTTP API: %w", err)
	}
	return nil
}

// stoppingKey is the request context's key of the context that ends when
// the Server starts to shut down.
type stoppingKey struct{}

// untilShutdown returns a context of r that also ends when the Server
// serving r starts to shut down (outside a Server, only with r).
func untilShutdown(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stopping, ok := r.Context().Value(stoppingKey{}).(context.Context)
	if !ok {
		return ctx, cancel
	}
	unhook := context.AfterFunc(stopping, cancel)
	return ctx, func() { unhook(); cancel() }
}

// stopping returns a channel closed when the Server serving r starts to
// shut down; nil (never closed) outside a Server.
func stopping(r *http.Request) <-chan struct{} {
	if c, ok := r.Context().Value(stoppingKey{}).(context.Context); ok {
		return c.Done()
	}
	return nil
}

// NeedLeaderElection is false so that the manager stops the server before
// the engine (it stops runnables that need no leader election first): the
// requests in flight reach the outbox before the processor drains it. The
// API therefore also serves in a manager that does not lead; its engine has
// no streams applied there (the controllers run on the leader only), so it
// answers 404, which is one reason the manager runs as a single replica
// (docs/deploy.md).
func (*Server) NeedLeaderElection() bool { return false }
