package middleware

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

func TestFilter(t *testing.T) {
	evalErr := errors.New("no such key 'sku'")
	tests := []struct {
		name          string
		match         bool
		err           error
		wantCalls     int
		wantSkip      bool
		wantPermanent bool
	}{
		{name: "match passes the message on", match: true, wantCalls: 1},
		{name: "no match skips without calling next", match: false, wantSkip: true},
		{name: "evaluation error is permanent", err: evalErr, wantPermanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen engine.Message
			p := PredicateFunc(func(_ context.Context, msg engine.Message) (bool, error) {
				seen = msg
				return tt.match, tt.err
			})
			next := newScriptedHandler()
			msg := testMessage()

			_, err := Filter(p)(next).Handle(context.Background(), msg)
			if next.calls() != tt.wantCalls {
				t.Errorf("next calls: got %d, want %d", next.calls(), tt.wantCalls)
			}
			if seen.ID != msg.ID {
				t.Errorf("predicate saw event %q, want %q", seen.ID, msg.ID)
			}
			if got := errors.Is(err, engine.ErrSkip); got != tt.wantSkip {
				t.Errorf("skipped: got %v (error %v), want %v", got, err, tt.wantSkip)
			}
			if got := engine.IsPermanent(err); got != tt.wantPermanent {
				t.Errorf("permanent: got %v (error %v), want %v", got, err, tt.wantPermanent)
			}
			if tt.err != nil {
				for _, want := range []string{msg.Stream, msg.ID, tt.err.Error()} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
			}
		})
	}
}

func TestFilterPanicsOnNilPredicate(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Filter(nil) did not panic")
		}
	}()
	Filter(nil)
}
