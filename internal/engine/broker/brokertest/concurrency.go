package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
)

// concurrencyBehaviours run many publishers and subscribers at once; run the
// suite with -race.
var concurrencyBehaviours = []behaviour{
	{"ConcurrentPublishersOnDifferentStreamsKeepOrder", testConcurrentPublishersOnDifferentStreamsKeepOrder},
	{"SubscribersAgreeOnOrderOfConcurrentPublishers", testSubscribersAgreeOnOrderOfConcurrentPublishers},
	{"ManyPublishersAndSubscribersWithChurn", testManyPublishersAndSubscribersWithChurn},
}

// collect receives n messages from sub, or fails after enginetest.Timeout.
// It is for goroutines other than the test's, which must not call t.Fatal.
func collect(sub broker.Subscription, n int) ([]engine.Message, error) {
	timeout := time.NewTimer(enginetest.Timeout)
	defer timeout.Stop()
	got := make([]engine.Message, 0, n)
	for len(got) < n {
		select {
		case m, ok := <-sub.C():
			if !ok {
				return got, fmt.Errorf("C() closed after %d messages, want %d", len(got), n)
			}
			got = append(got, m)
		case <-timeout.C:
			return got, fmt.Errorf("received %d messages in %v, want %d", len(got), enginetest.Timeout, n)
		}
	}
	return got, nil
}

// collectUntilLag is collect for a subscriber that may fall behind: it
// returns what arrived before C closed, which is an error unless the
// subscriber lagged.
func collectUntilLag(sub broker.Subscription, n int) ([]engine.Message, error) {
	got, err := collect(sub, n)
	if err != nil && len(got) < n && errors.Is(sub.Err(), broker.ErrLagged) {
		return got, nil
	}
	return got, err
}

// checkPublisherPrefix returns an error unless got holds, for each
// publisher, its messages from 1 on, in order and without a gap: what a
// subscriber that may have lagged has a right to.
func checkPublisherPrefix(got []engine.Message) error {
	next := make(map[string]uint64)
	for i, m := range got {
		if want := next[m.Name] + 1; m.Sequence != want {
			return fmt.Errorf("message %d is %s #%d, want #%d", i, m.Name, m.Sequence, want)
		}
		next[m.Name] = m.Sequence
	}
	return nil
}

// publisherMessage is the seq-th message publisher p sends on stream; Name
// carries p so a subscriber can check each publisher's order.
func publisherMessage(p int, stream string, seq uint64) engine.Message {
	m := message(stream, seq)
	m.ID = fmt.Sprintf("p%d-%s-%d", p, stream, seq)
	m.Name = fmt.Sprintf("p%d", p)
	return m
}

// checkPublisherOrder returns an error unless got holds, for each of
// publishers publishers, messages 1 to perPublisher in order.
func checkPublisherOrder(got []engine.Message, publishers int, perPublisher uint64) error {
	next := make(map[string]uint64, publishers)
	for i, m := range got {
		want := next[m.Name] + 1
		if m.Sequence != want {
			return fmt.Errorf("message %d from %s is #%d, want #%d", i, m.Name, m.Sequence, want)
		}
		next[m.Name] = want
	}
	for p := range publishers {
		if got := next[fmt.Sprintf("p%d", p)]; got != perPublisher {
			return fmt.Errorf("got %d messages from p%d, want %d", got, p, perPublisher)
		}
	}
	return nil
}

// publishInBatches publishes msgs in batches of 1, 2, 3, 4, 1, ... so runs of
// every length cross the broker.
func publishInBatches(ctx context.Context, b broker.Broker, msgs []engine.Message) error {
	for size := 1; len(msgs) > 0; size = size%4 + 1 {
		n := min(size, len(msgs))
		if err := b.Publish(ctx, msgs[:n]...); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

func testConcurrentPublishersOnDifferentStreamsKeepOrder(t *testing.T, b broker.Broker) {
	const streams, subsPerStream, perStream = 4, 2, 300
	ctx, cancel := context.WithTimeout(t.Context(), enginetest.Timeout)
	defer cancel()

	errs := make(chan error, streams*(subsPerStream+2))
	var wg sync.WaitGroup
	for s := range streams {
		stream := fmt.Sprintf("s%d", s)
		for range subsPerStream {
			sub := subscribe(t, b, stream, perStream)
			wg.Go(func() {
				got, err := collect(sub, perStream)
				if err == nil {
					err = checkPublisherOrder(got, 1, perStream)
				}
				if err != nil {
					errs <- fmt.Errorf("subscriber of %s: %w", stream, err)
				}
			})
		}
		// A small queue may overflow mid-run: what it got must still be
		// in order, with no gap.
		small := subscribe(t, b, stream, 4)
		wg.Go(func() {
			got, err := collectUntilLag(small, perStream)
			if err == nil {
				err = checkPublisherPrefix(got)
			}
			if err != nil {
				errs <- fmt.Errorf("small-queue subscriber of %s: %w", stream, err)
			}
		})
		wg.Go(func() {
			if err := publishInBatches(ctx, b, publisherMessages(0, stream, perStream)); err != nil {
				errs <- fmt.Errorf("publisher of %s: %w", stream, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// publisherMessages returns messages 1 to n that publisher p sends on stream.
func publisherMessages(p int, stream string, n uint64) []engine.Message {
	msgs := make([]engine.Message, 0, n)
	for seq := uint64(1); seq <= n; seq++ {
		msgs = append(msgs, publisherMessage(p, stream, seq))
	}
	return msgs
}

func testSubscribersAgreeOnOrderOfConcurrentPublishers(t *testing.T, b broker.Broker) {
	const publishers, subscribers, perPublisher = 3, 3, 200
	ctx, cancel := context.WithTimeout(t.Context(), enginetest.Timeout)
	defer cancel()

	received := make([][]engine.Message, subscribers)
	errs := make(chan error, publishers+subscribers)
	var wg sync.WaitGroup
	for i := range subscribers {
		sub := subscribe(t, b, "orders", publishers*perPublisher)
		wg.Go(func() {
			got, err := collect(sub, publishers*perPublisher)
			if err == nil {
				err = checkPublisherOrder(got, publishers, perPublisher)
			}
			if err != nil {
				errs <- fmt.Errorf("subscriber %d: %w", i, err)
			}
			received[i] = got
		})
	}
	for p := range publishers {
		wg.Go(func() {
			if err := publishInBatches(ctx, b, publisherMessages(p, "orders", perPublisher)); err != nil {
				errs <- fmt.Errorf("publisher p%d: %w", p, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	ids := func(msgs []engine.Message) []string {
		out := make([]string, len(msgs))
		for i, m := range msgs {
			out[i] = m.ID
		}
		return out
	}
	want := ids(received[0])
	for i := 1; i < subscribers; i++ {
		got := ids(received[i])
		if at := firstDifference(got, want); at >= 0 {
			t.Fatalf("subscriber %d's message %d is %s, subscriber 0's is %s: subscribers disagree on order", i, at, got[at], want[at])
		}
	}
}

// firstDifference returns the first index where a and b, of equal length,
// differ, or -1 when they are equal.
func firstDifference(a, b []string) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func testManyPublishersAndSubscribersWithChurn(t *testing.T, b broker.Broker) {
	const publishers, perStream = 4, 150
	streams := []string{"s0", "s1", "s2"}
	ctx, cancel := context.WithTimeout(t.Context(), enginetest.Timeout)
	defer cancel()

	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default: // enough errors to fail the test already
		}
	}

	// Steady subscribers must see every message of their stream, in each
	// publisher's order, while others come and go beside them.
	var steady sync.WaitGroup
	for _, stream := range streams {
		sub := subscribe(t, b, stream, publishers*perStream)
		steady.Go(func() {
			got, err := collect(sub, publishers*perStream)
			if err == nil {
				err = checkPublisherOrder(got, publishers, perStream)
			}
			if err != nil {
				report(fmt.Errorf("steady subscriber of %s: %w", stream, err))
			}
		})
	}

	// Churning subscribers subscribe, take a few messages, and close, often
	// after their queue of one overflowed.
	stop := make(chan struct{})
	var churn sync.WaitGroup
	for i, stream := range streams {
		churn.Go(func() {
			for round := 0; ; round++ {
				select {
				case <-stop:
					return
				default:
				}
				sub, err := b.Subscribe(stream, 1)
				if err != nil {
					report(fmt.Errorf("churning Subscribe(%q): %w", stream, err))
					return
				}
				take := (i + round) % 3
				for range take {
					select {
					case <-sub.C():
					case <-stop:
					}
				}
				if err := sub.Close(); err != nil {
					report(fmt.Errorf("churning Close: %w", err))
				}
			}
		})
	}

	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			// Each batch mixes streams so runs start and end mid-batch.
			var all []engine.Message
			for seq := uint64(1); seq <= perStream; seq++ {
				for _, stream := range streams {
					all = append(all, publisherMessage(p, stream, seq))
				}
			}
			if err := publishInBatches(ctx, b, all); err != nil {
				report(fmt.Errorf("publisher p%d: %w", p, err))
			}
		})
	}
	pubs.Wait()
	steady.Wait()
	close(stop)
	churn.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
