package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// awayStore is a shared store that cannot be reached.
type awayStore struct{}

func (awayStore) AppendAccepted(context.Context, string, []engine.Message, []bool, versions.Expect) ([]engine.Message, error) {
	return nil, fmt.Errorf("%w: nats: timeout", eventstore.ErrUnavailable)
}

func TestIngestWhileTheEventStoreIsAwayIs503WithRetryAfter(t *testing.T) {
	a := newAPI(t, apiOptions{appender: awayStore{}})
	r := a.post("/v1/namespaces/team-a/streams/items-events/events", "application/json", `{"foo":"a","n":1}`)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After: got %q, want 1", got)
	}
}
