package brokertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
)

// message returns the seq-th test message of stream.
func message(stream string, seq uint64) engine.Message {
	return engine.Message{
		ID:       fmt.Sprintf("%s-%d", stream, seq),
		Name:     "Tested",
		Stream:   stream,
		Sequence: seq,
		Payload:  fmt.Appendf(nil, `{"n":%d}`, seq),
	}
}

// messages returns the test messages of stream numbered from to to, inclusive.
func messages(stream string, from, to uint64) []engine.Message {
	msgs := make([]engine.Message, 0, to-from+1)
	for seq := from; seq <= to; seq++ {
		msgs = append(msgs, message(stream, seq))
	}
	return msgs
}

// subscribe subscribes to stream and closes the subscription when the test ends.
func subscribe(t *testing.T, b broker.Broker, stream string, capacity int) broker.Subscription {
	t.Helper()
	sub, err := b.Subscribe(stream, capacity)
	if err != nil {
		t.Fatalf("Subscribe(%q, %d) = %v, want nil error", stream, capacity, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// publish publishes msgs and fails the test unless it succeeds within
// enginetest.Timeout.
func publish(t *testing.T, b broker.Broker, msgs ...engine.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), enginetest.Timeout)
	defer cancel()
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish(%d messages) = %v, want nil", len(msgs), err)
	}
}

// publishAsync publishes msgs on a new goroutine with ctx and returns a
// channel that receives Publish's result, so that a Publish that hangs fails
// the test instead of hanging it. When the test ends it cancels the Publish,
// if still running, and waits for it to return.
func publishAsync(t *testing.T, ctx context.Context, b broker.Broker, msgs ...engine.Message) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	result := make(chan error, 1)
	returned := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-returned
	})
	go func() {
		defer close(returned)
		result <- b.Publish(ctx, msgs...)
	}()
	return result
}

// receive returns the next n messages of sub, failing the test if they do not
// arrive within enginetest.Timeout or C closes first.
func receive(t *testing.T, sub broker.Subscription, n int) []engine.Message {
	t.Helper()
	timeout := time.NewTimer(enginetest.Timeout)
	defer timeout.Stop()
	got := make([]engine.Message, 0, n)
	for len(got) < n {
		select {
		case m, ok := <-sub.C():
			if !ok {
				t.Fatalf("C() closed after %d messages, want %d", len(got), n)
			}
			got = append(got, m)
		case <-timeout.C:
			t.Fatalf("received %d messages in %v, want %d", len(got), enginetest.Timeout, n)
		}
	}
	return got
}

// awaitResult returns the error sent on result, failing the test if none
// arrives within enginetest.Timeout.
func awaitResult(t *testing.T, result <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-result:
		return err
	case <-time.After(enginetest.Timeout):
		t.Fatalf("%s did not return within %v", what, enginetest.Timeout)
		return nil
	}
}

// awaitClosed drains sub until C is closed and returns what it drained,
// failing the test if C stays open for enginetest.Timeout.
func awaitClosed(t *testing.T, sub broker.Subscription) []engine.Message {
	t.Helper()
	timeout := time.NewTimer(enginetest.Timeout)
	defer timeout.Stop()
	var drained []engine.Message
	for {
		select {
		case m, ok := <-sub.C():
			if !ok {
				return drained
			}
			drained = append(drained, m)
		case <-timeout.C:
			t.Fatalf("C() still open %v after Close, drained %d messages", enginetest.Timeout, len(drained))
		}
	}
}

// checkSequences fails the test unless got holds exactly the test messages of
// stream numbered from to to, in order.
func checkSequences(t *testing.T, got []engine.Message, stream string, from, to uint64) {
	t.Helper()
	want := int(to - from + 1)
	if len(got) != want {
		t.Fatalf("got %d messages, want %d", len(got), want)
	}
	for i, m := range got {
		seq := from + uint64(i)
		if m.Stream != stream || m.Sequence != seq {
			t.Fatalf("message %d is %s #%d, want %s #%d", i, m.Stream, m.Sequence, stream, seq)
		}
	}
}
