package projection_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// event returns the seq-th event of stream "items", with a decoded payload.
func event(seq uint64, name, sku string, n float64) engine.Message {
	return engine.Message{
		ID:       "id-" + sku + "-" + name,
		Name:     name,
		Stream:   "items",
		Sequence: seq,
		Payload:  []byte(`{"decoded":"below"}`),
		Value:    map[string]any{"sku": sku, "n": n},
	}
}

func spec(typ projection.ReadModelType, key, keyExpr string) projection.Spec {
	return projection.Spec{
		Name:          "ns/items",
		Streams:       []string{"items"},
		StartFrom:     projection.Beginning,
		Type:          typ,
		Key:           key,
		KeyExpression: keyExpr,
	}
}

func newProjection(t *testing.T, s projection.Spec, store readmodel.Store) *projection.Projection {
	t.Helper()
	p, err := projection.New(s, store)
	if err != nil {
		t.Fatalf("new projection: %v", err)
	}
	return p
}

func handle(t *testing.T, p *projection.Projection, msg engine.Message) {
	t.Helper()
	out, err := p.Handle(t.Context(), msg)
	if err != nil {
		t.Fatalf("handle %s/%d: %v", msg.Stream, msg.Sequence, err)
	}
	if out != nil {
		t.Fatalf("handle %s/%d: got messages %v, want none", msg.Stream, msg.Sequence, out)
	}
}

func wantDocument(t *testing.T, store readmodel.Store, want string) {
	t.Helper()
	b, err := store.Document(t.Context(), "ns/items")
	if err != nil {
		t.Fatalf("document: %v", err)
	}
	var got, w any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("document %s: %v", b, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("document: got %s, want %s", b, want)
	}
}

func wantCheckpoint(t *testing.T, p *projection.Projection, want readmodel.Checkpoint) {
	t.Helper()
	if got := p.Checkpoint(); !maps.Equal(got, want) {
		t.Errorf("checkpoint: got %v, want %v", got, want)
	}
}

func TestProjectionFoldsEventsByReadModelType(t *testing.T) {
	events := []engine.Message{
		event(1, "ItemCreated", "a", 1),
		event(2, "ItemCreated", "b", 2),
		event(3, "ItemUpdated", "a", 3),
	}
	tests := []struct {
		name string
		spec projection.Spec
		want string
	}{
		{"append with a fixed key", spec(projection.Append, "items", ""),
			`{"items":[{"sku":"a","n":1},{"sku":"b","n":2},{"sku":"a","n":3}]}`},
		{"append with a key expression", spec(projection.Append, "", "event.payload.sku"),
			`{"a":[{"sku":"a","n":1},{"sku":"a","n":3}],"b":[{"sku":"b","n":2}]}`},
		{"latest with a fixed key", spec(projection.Latest, "last", ""),
			`{"last":{"sku":"a","n":3}}`},
		{"latest with a key expression", spec(projection.Latest, "", "event.payload.sku"),
			`{"a":{"sku":"a","n":3},"b":{"sku":"b","n":2}}`},
		{"count with a fixed key", spec(projection.Count, "total", ""),
			`{"total":3}`},
		{"count with a key expression", spec(projection.Count, "", "event.name"),
			`{"ItemCreated":2,"ItemUpdated":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := readmodel.NewMemory()
			p := newProjection(t, tt.spec, store)
			for _, e := range events {
				handle(t, p, e)
			}
			wantDocument(t, store, tt.want)
			wantCheckpoint(t, p, readmodel.Checkpoint{"items": 3})
			if got := p.Stats().Processed; got != 3 {
				t.Errorf("processed: got %d, want 3", got)
			}
		})
	}
}

func TestCountNeedsNoDecodedPayload(t *testing.T) {
	store := readmodel.NewMemory()
	p := newProjection(t, spec(projection.Count, "total", ""), store)
	msg := event(1, "ItemCreated", "a", 1)
	msg.Value = nil
	handle(t, p, msg)
	wantDocument(t, store, `{"total":1}`)
}

func TestCheckpointsAreKeptPerStream(t *testing.T) {
	store := readmodel.NewMemory()
	s := spec(projection.Append, "all", "")
	s.Streams = []string{"items", "orders"}
	p := newProjection(t, s, store)
	order := event(1, "OrderPlaced", "o", 9)
	order.Stream = "orders"
	handle(t, p, event(1, "ItemCreated", "a", 1))
	handle(t, p, order)
	handle(t, p, event(2, "ItemCreated", "b", 2))
	wantDocument(t, store, `{"all":[{"sku":"a","n":1},{"sku":"o","n":9},{"sku":"b","n":2}]}`)
	wantCheckpoint(t, p, readmodel.Checkpoint{"items": 2, "orders": 1})
}

func TestEventNamesSkipOtherEvents(t *testing.T) {
	store := readmodel.NewMemory()
	s := spec(projection.Count, "created", "")
	s.EventNames = []string{"ItemCreated"}
	p := newProjection(t, s, store)
	handle(t, p, event(1, "ItemCreated", "a", 1))
	other := event(2, "ItemDeleted", "a", 1)
	if _, err := p.Handle(t.Context(), other); !errors.Is(err, engine.ErrSkip) {
		t.Fatalf("handle an unlisted event name: got %v, want ErrSkip", err)
	}
	wantDocument(t, store, `{"created":1}`)
	wantCheckpoint(t, p, readmodel.Checkpoint{"items": 1})
	// The router settles the skipped message: its sequence is checkpointed.
	if err := p.Settle(t.Context(), other, false); err != nil {
		t.Fatalf("settle: %v", err)
	}
	wantCheckpoint(t, p, readmodel.Checkpoint{"items": 2})
	handle(t, p, event(3, "ItemCreated", "b", 1))
	wantDocument(t, store, `{"created":2}`)
	if got := p.Stats().Processed; got != 3 {
		t.Errorf("processed: got %d, want 3 (two applied, one skipped)", got)
	}
}

func TestRedeliveryNeverAppliesTwice(t *testing.T) {
	store := readmodel.NewMemory()
	p := newProjection(t, spec(projection.Append, "items", ""), store)
	first, second := event(1, "ItemCreated", "a", 1), event(2, "ItemCreated", "b", 2)
	handle(t, p, first)
	handle(t, p, second)
	for _, msg := range []engine.Message{first, second} {
		if _, err := p.Handle(t.Context(), msg); !errors.Is(err, engine.ErrSkip) {
			t.Errorf("redeliver %d: got %v, want ErrSkip", msg.Sequence, err)
		}
		// Settling a redelivered message must not count it again.
		if err := p.Settle(t.Context(), msg, false); err != nil {
			t.Errorf("settle redelivered %d: %v", msg.Sequence, err)
		}
	}
	wantDocument(t, store, `{"items":[{"sku":"a","n":1},{"sku":"b","n":2}]}`)
	if got := p.Stats(); got.Processed != 2 || got.DeadLettered != 0 {
		t.Errorf("stats: got processed %d, dead-lettered %d, want 2, 0", got.Processed, got.DeadLettered)
	}
}

func TestCheckpointSurvivesRestart(t *testing.T) {
	store := readmodel.NewMemory()
	s := spec(projection.Append, "", "event.payload.sku")
	p := newProjection(t, s, store)
	handle(t, p, event(1, "ItemCreated", "a", 1))
	handle(t, p, event(2, "ItemCreated", "a", 2))

	restarted := newProjection(t, s, store)
	wantCheckpoint(t, restarted, readmodel.Checkpoint{"items": 2})
	if _, err := restarted.Handle(t.Context(), event(2, "ItemCreated", "a", 2)); !errors.Is(err, engine.ErrSkip) {
		t.Fatalf("redeliver after restart: got %v, want ErrSkip", err)
	}
	handle(t, restarted, event(3, "ItemCreated", "a", 3))
	wantDocument(t, store, `{"a":[{"sku":"a","n":1},{"sku":"a","n":2},{"sku":"a","n":3}]}`)
}

func TestBadEventsArePermanentErrors(t *testing.T) {
	undecoded := event(1, "ItemCreated", "a", 1)
	undecoded.Value = nil
	tests := []struct {
		name string
		spec projection.Spec
		msg  engine.Message
		want string
	}{
		{"key expression on a missing payload key", spec(projection.Append, "", "event.payload.nope"),
			event(1, "ItemCreated", "a", 1), "no such key: nope"},
		{"key expression of the wrong run-time type", spec(projection.Latest, "", "event.payload.n > 0 ? event.payload : 'x'"),
			event(1, "ItemCreated", "a", 1), "want string, int or uint"},
		{"append of an undecoded payload", spec(projection.Append, "items", ""),
			undecoded, "the pipeline needs Deserialize"},
		{"latest of an undecoded payload", spec(projection.Latest, "items", ""),
			undecoded, "the pipeline needs Deserialize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := readmodel.NewMemory()
			p := newProjection(t, tt.spec, store)
			_, err := p.Handle(t.Context(), tt.msg)
			if !engine.IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("handle: got %v, want a permanent error containing %q", err, tt.want)
			}
			if _, err := store.Document(t.Context(), "ns/items"); !errors.Is(err, readmodel.ErrNotFound) {
				t.Errorf("document after a failed event: got %v, want ErrNotFound (nothing applied)", err)
			}
			wantCheckpoint(t, p, readmodel.Checkpoint{})
		})
	}
}

func TestCancelledKeyEvaluationIsNotPermanent(t *testing.T) {
	p := newProjection(t, spec(projection.Count, "", "event.payload.items.all(x, x >= 0) ? 'all' : 'some'"), readmodel.NewMemory())
	items := make([]any, 10_000)
	for i := range items {
		items[i] = float64(i)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := p.Handle(ctx, engine.Message{Stream: "items", Sequence: 1, Value: map[string]any{"items": items}})
	if !errors.Is(err, context.Canceled) || engine.IsPermanent(err) {
		t.Fatalf("handle with a cancelled context: got %v, want context.Canceled, not permanent", err)
	}
}

func TestSettleAdvancesCheckpointAndCounts(t *testing.T) {
	tests := []struct {
		name                        string
		deadLettered                bool
		wantProcessed, wantDeadLtrd uint64
	}{
		{"skipped", false, 1, 0},
		{"dead-lettered", true, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := readmodel.NewMemory()
			p := newProjection(t, spec(projection.Append, "items", ""), store)
			msg := event(1, "ItemCreated", "a", 1)
			for range 2 { // the second call is a redelivery and changes nothing
				if err := p.Settle(t.Context(), msg, tt.deadLettered); err != nil {
					t.Fatalf("settle: %v", err)
				}
			}
			wantCheckpoint(t, p, readmodel.Checkpoint{"items": 1})
			got := p.Stats()
			if got.Processed != tt.wantProcessed || got.DeadLettered != tt.wantDeadLtrd {
				t.Errorf("stats: got processed %d, dead-lettered %d, want %d, %d",
					got.Processed, got.DeadLettered, tt.wantProcessed, tt.wantDeadLtrd)
			}
			// The checkpoint is in the store, so a restart does not replay it.
			cp, err := store.Checkpoint(t.Context(), "ns/items")
			if err != nil || cp["items"] != 1 {
				t.Errorf("stored checkpoint: got %v, %v, want items=1", cp, err)
			}
			wantDocument(t, store, `{}`)
			if _, err := p.Handle(t.Context(), msg); !errors.Is(err, engine.ErrSkip) {
				t.Errorf("handle a settled message: got %v, want ErrSkip", err)
			}
		})
	}
}

func TestStoreErrorsAreRetryable(t *testing.T) {
	store := readmodel.NewMemory()
	p := newProjection(t, spec(projection.Append, "items", ""), store)
	if err := store.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	_, err := p.Handle(t.Context(), event(1, "ItemCreated", "a", 1))
	if err == nil || engine.IsPermanent(err) || errors.Is(err, engine.ErrSkip) {
		t.Fatalf("handle with a closed store: got %v, want a retryable error", err)
	}
	wantCheckpoint(t, p, readmodel.Checkpoint{})
	if got := p.Stats().Processed; got != 0 {
		t.Errorf("processed: got %d, want 0", got)
	}
}

func TestTypeClashInTheReadModelIsPermanent(t *testing.T) {
	store := readmodel.NewMemory()
	// An earlier Latest projection of the same name left an object under "items".
	if err := store.Apply(t.Context(), "ns/items",
		[]readmodel.Change{{Key: "items", Op: readmodel.OpSet, Value: map[string]any{}}}, nil); err != nil {
		t.Fatalf("seed: %v", err)
	}
	p := newProjection(t, spec(projection.Append, "items", ""), store)
	_, err := p.Handle(t.Context(), event(1, "ItemCreated", "a", 1))
	if !engine.IsPermanent(err) || !errors.Is(err, readmodel.ErrTypeClash) {
		t.Fatalf("handle: got %v, want a permanent ErrTypeClash", err)
	}
}

func TestStatsLag(t *testing.T) {
	s := projection.Stats{Checkpoint: readmodel.Checkpoint{"a": 5, "b": 10}}
	tests := []struct {
		versions map[string]uint64
		want     uint64
	}{
		{map[string]uint64{"a": 5, "b": 10}, 0},
		{map[string]uint64{"a": 8, "b": 10}, 3},
		{map[string]uint64{"a": 8, "b": 12, "c": 4}, 9},
		{map[string]uint64{"a": 3}, 0}, // a version read before the checkpoint moved
		{nil, 0},
	}
	for _, tt := range tests {
		if got := s.Lag(tt.versions); got != tt.want {
			t.Errorf("lag(%v): got %d, want %d", tt.versions, got, tt.want)
		}
	}
}

func TestSpecReturnsACopy(t *testing.T) {
	s := spec(projection.Append, "items", "")
	p := newProjection(t, s, readmodel.NewMemory())
	s.Streams[0] = "changed"
	got := p.Spec()
	got.Streams[0] = "changed too"
	if want := []string{"items"}; !reflect.DeepEqual(p.Spec().Streams, want) {
		t.Errorf("spec streams: got %v, want %v", p.Spec().Streams, want)
	}
}

func TestMoveToReplacesTheReadModelAndGoesOnUnderTheNewName(t *testing.T) {
	store := readmodel.NewMemory()
	old := newProjection(t, spec(projection.Append, "items", ""), store)
	handle(t, old, event(1, "ItemCreated", "a", 1))

	s := spec(projection.Count, "total", "")
	s.Name = "ns/items-rebuilt"
	p := newProjection(t, s, store)
	handle(t, p, event(1, "ItemCreated", "a", 1))
	if err := p.MoveTo(t.Context(), "ns/items"); err != nil {
		t.Fatalf("move: %v", err)
	}
	handle(t, p, event(2, "ItemCreated", "b", 2))
	wantDocument(t, store, `{"total":2}`)
	if got := p.Spec().Name; got != "ns/items" {
		t.Errorf("name after the move: got %q, want ns/items", got)
	}
	if _, err := store.Document(t.Context(), "ns/items-rebuilt"); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("document under the old name: got %v, want ErrNotFound", err)
	}
	if got := p.Stats(); got.Processed != 2 || got.Checkpoint["items"] != 2 {
		t.Errorf("stats after the move: got %+v, want processed 2 and checkpoint items=2", got)
	}
}
