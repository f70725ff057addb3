package eventstoretest

import (
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

var closeBehaviours = []behaviour{
	{"ClosingTheStoreEndsSubscriptions", testClosingTheStoreEndsSubscriptions},
	{"CallsAfterCloseReturnErrClosed", testCallsAfterCloseReturnErrClosed},
}

func testClosingTheStoreEndsSubscriptions(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, event("a"))
	waiting := subscribe(t, s, ordersStream, 1)
	unknown := subscribe(t, s, "unknown", 0)
	pending := []<-chan result{nextAsync(testContext(t), waiting), nextAsync(testContext(t), unknown)}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	for i, ch := range pending {
		if r := await(t, ch); !errors.Is(r.err, eventstore.ErrClosed) {
			t.Errorf("pending Next %d after Close: got %v, want ErrClosed", i, r.err)
		}
	}
}

func testCallsAfterCloseReturnErrClosed(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, event("a"))
	sub := subscribe(t, s, ordersStream, 0)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	ctx := testContext(t)
	calls := map[string]func() error{
		"Append": func() error {
			_, err := s.Append(ctx, ordersStream, eventstore.Any, []engine.Message{event("b")})
			return err
		},
		"Read": func() error {
			_, err := s.Read(ctx, ordersStream, 0, 10)
			return err
		},
		"Version": func() error {
			_, err := s.Version(ctx, ordersStream)
			return err
		},
		"Subscribe": func() error {
			_, err := s.Subscribe(ctx, ordersStream, 0)
			return err
		},
		"Next": func() error {
			_, err := sub.Next(ctx)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
}
