package natsstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
)

// A create that a cluster refuses for want of servers online (a node
// restarting, a cluster still forming) or of a leader is tried again; one
// refused for what it asks (replicas a lone server cannot keep) is not.
func TestCreateStreamTriesAgainWhileTooFewServersAreOnline(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}, true},
		{fmt.Errorf("wrapped: %w", &jetstream.APIError{Code: 400, ErrorCode: 10005}), true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008}, true},
		{context.DeadlineExceeded, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}, false},
		{&jetstream.APIError{Code: 500, ErrorCode: 10074, Description: "replicas > 1 not supported in non-clustered mode"}, false},
		{&jetstream.APIError{Code: 500, ErrorCode: 10052, Description: "max age needs to be >= 100ms"}, false},
		{&jetstream.APIError{Code: 500, ErrorCode: 10009, Description: "JetStream cluster can not handle request"}, true},
	} {
		if got := retryableCreate(c.err); got != c.want {
			t.Errorf("retryableCreate(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// Replicas a lone server cannot keep are refused at once, with JetStream's
// reason, rather than tried again until the caller gives up.
func TestMoreReplicasThanALoneServerKeepsAreRefusedWithTheReason(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{Dir: t.TempDir()})
	c, err := Connect(t.Context(), Options{URL: srv.ClientURL(), Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = NewEventStore(ctx, c)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "replicas > 1 not supported") {
		t.Fatalf("NewEventStore with 3 replicas on one server: %v, want JetStream's refusal", err)
	}
}

// A read-model read that nobody answers, or that JetStream refuses as
// unavailable, is what a stream electing a new leader answers: it is asked
// again. A refusal of the request itself is not.
func TestALeaderReadIsAskedAgainWhileTheStreamHasNoLeader(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("read from JetStream: %w", nats.ErrNoResponders), true},
		{fmt.Errorf("read from JetStream: %w", &jetstream.APIError{Code: 503, ErrorCode: 10008}), true},
		{fmt.Errorf("read from JetStream: %w", &jetstream.APIError{Code: 400, ErrorCode: 10003, Description: "bad request"}), false},
		{fmt.Errorf("read from JetStream: %w", context.Canceled), false},
	} {
		if got := leaderAway(c.err); got != c.want {
			t.Errorf("leaderAway(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// A read that found the stream missing reads as empty even when another
// writer creates the stream a moment later, before the reader looks again.
func TestAStreamMissingWhenReadStaysMissingForThatRead(t *testing.T) {
	c, err := Connect(t.Context(), Options{URL: natstest.Shared(t).ClientURL(), Prefix: natstest.Prefix(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s, err := NewEventStore(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Append(t.Context(), "orders", eventstore.Any, []engine.Message{{ID: "a", Name: "N", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	st := s.stream("orders")
	if !s.missing(t.Context(), st, fmt.Errorf("%w: %w", errStreamMissing, nats.ErrNoResponders)) {
		t.Error("a read that found the stream missing is not taken as missing once the stream exists")
	}
	if s.missing(t.Context(), st, fmt.Errorf("natsstore: read: %w", nats.ErrNoResponders)) {
		t.Error("an unanswered read of a stream that exists is taken as missing")
	}
}

// A direct read that nobody answers yet (a read-model stream just created,
// whose replicas are not yet listening for direct gets on every server, or
// one electing a leader) is asked again until the stream answers.
func TestADirectReadOfAStreamNobodyServesYetIsAskedAgain(t *testing.T) {
	c, err := Connect(t.Context(), Options{URL: natstest.Shared(t).ClientURL(), Prefix: natstest.Prefix(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	l := newLayout(natstest.Prefix(t.TempDir()))
	s := &ReadModels{nc: c.NC, l: l}
	created := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, err := c.CreateStream(t.Context(), l.streamConfig(1))
		created <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	msgs, err := s.directPage(ctx, l.all())
	if cerr := <-created; cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil || len(msgs) != 0 {
		t.Fatalf("direct page of a stream created while it was asked: %d messages, %v; want none and no error", len(msgs), err)
	}
}

// whileAway asks again on no responders and a 503, and stops at once on
// any other error and when its context ends.
func TestWhileAwayAsksAgainOnlyWhileTheStreamIsAway(t *testing.T) {
	asks := 0
	err := whileAway(t.Context(), func() error {
		asks++
		if asks < 3 {
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil || asks != 3 {
		t.Errorf("asked %d times, %v; want 3 and no error", asks, err)
	}
	asks = 0
	bad := &jetstream.APIError{Code: 400, ErrorCode: 10003}
	if err := whileAway(t.Context(), func() error { asks++; return bad }); !errors.Is(err, bad) || asks != 1 {
		t.Errorf("a bad request was asked %d times (%v); want once", asks, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := whileAway(ctx, func() error { return nats.ErrNoResponders }); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("when the context ends: %v; want the last error, no responders", err)
	}
}

// The commits the manager waits for are told to the observers: appends
// stored (a refused one is not), read-model batches with their checkpoint.
func TestStoredAppendsAndReadModelBatchesAreObserved(t *testing.T) {
	var appends, batches, messages atomic.Int64
	c, err := Connect(t.Context(), Options{
		URL: natstest.Shared(t).ClientURL(), Prefix: natstest.Prefix(t.TempDir()),
		ObserveEventsCommit: func(n int, took time.Duration) {
			if took <= 0 {
				t.Errorf("an append group took %v", took)
			}
			appends.Add(int64(n))
		},
		ObserveReadModelsCommit: func(n int, took time.Duration) {
			if took <= 0 {
				t.Errorf("a read-model batch took %v", took)
			}
			batches.Add(1)
			messages.Add(int64(n))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	es, err := NewEventStore(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = es.Close() })
	for _, id := range []string{"a", "b"} {
		if _, err := es.Append(t.Context(), "orders", eventstore.Any, []engine.Message{{ID: id, Name: "N", Payload: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	refused := []engine.Message{{ID: "c", Name: "N", Payload: []byte(`{}`)}}
	if _, err := es.Append(t.Context(), "orders", eventstore.NoStream, refused); err == nil {
		t.Fatal("an append expecting an empty stream was stored on a stream of 2")
	}
	if got := appends.Load(); got != 2 {
		t.Errorf("appends observed: %d, want the 2 stored", got)
	}

	rm, err := NewReadModels(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	o := ownedReadModels{rm, nil}
	t.Cleanup(func() { _ = rm.Close() })
	if err := applyCount(t, rm, 1); err != nil {
		t.Fatal(err)
	}
	flush(t, o)
	if batches.Load() != 1 || messages.Load() < 2 {
		t.Errorf("read-model batches observed: %d of %d messages, want 1 of at least 2 (a value, the checkpoint)",
			batches.Load(), messages.Load())
	}
}

// A leader read whose request is dropped (sent while a new stream had no
// leader yet: nobody refuses it, nobody answers) is sent again after
// directGetWait rather than waiting for as long as its context lets.
func TestALeaderReadThatGoesUnansweredIsAskedAgain(t *testing.T) {
	// A server without JetStream: this test answers the stream's gets.
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l := newLayout("unanswered")
	var asked atomic.Int32
	sub, err := nc.Subscribe(apiMsgGet+l.stream, func(m *nats.Msg) {
		if asked.Add(1) == 1 {
			return // dropped
		}
		_ = m.Respond([]byte(`{"message":{"subject":"s","seq":7,"data":"eyJuIjoxfQ=="}}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	s := &ReadModels{nc: nc, l: l}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	m, err := s.last(ctx, "s")
	if err != nil || m == nil || m.seq != 7 || string(m.data) != `{"n":1}` {
		t.Fatalf("last = %+v, %v; want the message of the second ask", m, err)
	}
	if took := time.Since(start); asked.Load() != 2 || took > 5*time.Second {
		t.Errorf("asked %d times in %s; want twice, the second after about %s", asked.Load(), took, directGetWait)
	}
}

// Only the end of one attempt's wait is unanswered; the end of the
// caller's context is final.
func TestUnansweredIsTheEndOfAnAttemptNotOfTheCall(t *testing.T) {
	if err := unanswered(t.Context(), context.DeadlineExceeded); !leaderAway(err) {
		t.Errorf("an attempt that timed out while the call goes on: %v is not asked again", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if err := unanswered(ctx, context.DeadlineExceeded); leaderAway(err) {
		t.Errorf("a call whose context ended: %v is asked again", err)
	}
}
