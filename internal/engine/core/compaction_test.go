package core_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/boltstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// witnessStream sorts after every stream the tests compact, so a pass that
// has compacted it has done the others too.
const witnessStream = "zz-witness"

// compactingEngine runs an engine on store that compacts every few
// milliseconds, with the witness stream applied.
func compactingEngine(t *testing.T, store eventstore.Store) *core.Engine {
	t.Helper()
	e := startEngine(t, core.Config{Store: store, CompactionInterval: 5 * time.Millisecond})
	mustApplyStream(t, e, core.StreamSpec{Name: witnessStream, DefaultEventName: "Tick", Retention: core.Retention{MaxEvents: 1}})
	return e
}

// numbered returns n JSON payloads {"n":from} .. {"n":from+n-1}.
func numbered(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"n":%d}`, from+i)
	}
	return out
}

// numberedItems is the Append read model of numbered(from, n).
func numberedItems(from, n int) string {
	return `{"items":[` + strings.Join(numbered(from, n), ",") + `]}`
}

func first(t *testing.T, store eventstore.Store, stream string) uint64 {
	t.Helper()
	f, err := store.(eventstore.Compactor).First(context.Background(), stream)
	if err != nil {
		t.Fatalf("First(%s): %v", stream, err)
	}
	return f
}

func version(t *testing.T, store eventstore.Store, stream string) uint64 {
	t.Helper()
	v, err := store.Version(context.Background(), stream)
	if err != nil {
		t.Fatalf("Version(%s): %v", stream, err)
	}
	return v
}

// waitFirst waits until the stream's first retained sequence is want.
func waitFirst(t *testing.T, store eventstore.Store, stream string, want uint64) {
	t.Helper()
	enginetest.Eventually(t, fmt.Sprintf("stream %s to keep events from %d", stream, want), func() bool {
		return first(t, store, stream) == want
	})
}

// waitCompactionPasses returns once at least one whole compaction pass has
// run after the call: the witness stream is compacted twice, and a pass
// compacts it last.
func waitCompactionPasses(t *testing.T, e *core.Engine, store eventstore.Store) {
	t.Helper()
	for range 2 {
		ingestJSON(t, e, witnessStream, `{}`, `{}`)
		enginetest.Eventually(t, "the witness event to be stored", func() bool { return version(t, store, witnessStream) >= 2 })
		v := version(t, store, witnessStream)
		waitFirst(t, store, witnessStream, v)
	}
}

// checkStream fails unless the stream reads as sequences from..to.
func checkStream(t *testing.T, e *core.Engine, stream string, from, to uint64) {
	t.Helper()
	got, err := e.ReadStream(context.Background(), stream, 0, 0)
	if err != nil {
		t.Fatalf("ReadStream(%s): %v", stream, err)
	}
	if len(got) != int(to-from+1) || got[0].Sequence != from || got[len(got)-1].Sequence != to {
		seqs := make([]uint64, len(got))
		for i, m := range got {
			seqs[i] = m.Sequence
		}
		t.Fatalf("stream %s holds sequences %v, want %d..%d", stream, seqs, from, to)
	}
}

func TestRetentionByMaxEventsCompactsTheOldestEvents(t *testing.T) {
	store := eventstore.NewMemory()
	e := compactingEngine(t, store)
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E", Retention: core.Retention{MaxEvents: 3}})
	mustApplyProjection(t, e, appendProjection("all", "orders"))
	ingestJSON(t, e, "orders", numbered(1, 10)...)
	waitProcessed(t, e, "all", 10)
	waitFirst(t, store, "orders", 8)
	checkStream(t, e, "orders", 8, 10)
	assertJSONEqual(t, query(t, e, "all"), numberedItems(1, 10))

	ingestJSON(t, e, "orders", numbered(11, 2)...)
	waitFirst(t, store, "orders", 10)
	checkStream(t, e, "orders", 10, 12)
}

func TestRetentionByMaxAgeCompactsOlderEvents(t *testing.T) {
	store := eventstore.NewMemory()
	old := time.Now().Add(-2 * time.Hour)
	for _, stream := range []string{"orders", "stale"} {
		evs := make([]engine.Message, 5)
		for i := range evs {
			evs[i] = engine.Message{ID: fmt.Sprint("old-", i), Stream: stream, Name: "E", ContentType: "application/json",
				Payload: []byte(`{}`), Time: old.Add(time.Duration(i) * time.Minute)}
		}
		if _, err := store.Append(context.Background(), stream, eventstore.Any, evs); err != nil {
			t.Fatal(err)
		}
	}
	e := compactingEngine(t, store)
	retention := core.Retention{MaxAge: time.Hour}
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E", Retention: retention})
	mustApplyStream(t, e, core.StreamSpec{Name: "stale", DefaultEventName: "E", Retention: retention})
	ingestJSON(t, e, "orders", numbered(1, 3)...)
	waitFirst(t, store, "orders", 6)
	checkStream(t, e, "orders", 6, 8)
	// Every event is older than MaxAge: the last one stays.
	waitFirst(t, store, "stale", 5)
	checkStream(t, e, "stale", 5, 5)
}

// A projection that has applied 4 events and then waits (its pipeline is
// gone) holds back every event after its checkpoint, whatever the
// retention says; once it has applied them, they go.
func TestCompactionNeverSkipsEventsAProjectionHasNotApplied(t *testing.T) {
	store := eventstore.NewMemory()
	e := compactingEngine(t, store)
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E", Retention: core.Retention{MaxEvents: 2}})
	gate := core.PipelineSpec{Name: "gate", Middleware: core.DefaultPipeline().Middleware}
	if err := e.ApplyPipeline(gate); err != nil {
		t.Fatal(err)
	}
	slow := appendProjection("slow", "orders")
	slow.Pipeline = "gate"
	mustApplyProjection(t, e, slow)
	mustApplyProjection(t, e, appendProjection("fast", "orders"))
	ingestJSON(t, e, "orders", numbered(1, 4)...)
	waitProcessed(t, e, "slow", 4)

	e.RemovePipeline("gate")
	ingestJSON(t, e, "orders", numbered(5, 6)...)
	waitProcessed(t, e, "fast", 10)
	waitCompactionPasses(t, e, store)
	if got := first(t, store, "orders"); got != 5 {
		t.Fatalf("with the slow projection at checkpoint 4, the stream keeps events from %d, want 5", got)
	}
	checkStream(t, e, "orders", 5, 10)

	if err := e.ApplyPipeline(gate); err != nil {
		t.Fatal(err)
	}
	waitProcessed(t, e, "slow", 10)
	assertJSONEqual(t, query(t, e, "slow"), numberedItems(1, 10))
	waitFirst(t, store, "orders", 9)
}

func TestAProjectionCreatedAfterCompactionStartsAtTheFirstRetainedEvent(t *testing.T) {
	store := eventstore.NewMemory()
	e := compactingEngine(t, store)
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E", Retention: core.Retention{MaxEvents: 3}})
	ingestJSON(t, e, "orders", numbered(1, 10)...)
	waitFirst(t, store, "orders", 8)

	mustApplyProjection(t, e, appendProjection("late", "orders"))
	waitProcessed(t, e, "late", 3)
	assertJSONEqual(t, query(t, e, "late"), numberedItems(8, 3))
	ingestJSON(t, e, "orders", numbered(11, 1)...)
	waitProcessed(t, e, "late", 4)
	assertJSONEqual(t, query(t, e, "late"), numberedItems(8, 4))
}

// The same rule on the disk store: a projection waiting from the start (its
// pipeline does not exist yet) keeps every event until it has applied them.
func TestRetentionOnDiskStorageWaitsForAProjectionThatHasNotStarted(t *testing.T) {
	db, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() }) // after the engine's cleanup, which closes the store
	store := boltstore.NewEventStore(db)
	e := compactingEngine(t, store)
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E", Retention: core.Retention{MaxEvents: 2}})
	waiting := appendProjection("waiting", "orders")
	waiting.Pipeline = "later"
	if err := e.ApplyProjection(context.Background(), waiting); !errors.Is(err, core.ErrPipelineNotFound) {
		t.Fatalf("ApplyProjection with a missing pipeline: got %v, want ErrPipelineNotFound", err)
	}
	ingestJSON(t, e, "orders", numbered(1, 5)...)
	enginetest.Eventually(t, "5 stored events", func() bool { return version(t, store, "orders") == 5 })
	waitCompactionPasses(t, e, store)
	checkStream(t, e, "orders", 1, 5)

	if err := e.ApplyPipeline(core.PipelineSpec{Name: "later", Middleware: core.DefaultPipeline().Middleware}); err != nil {
		t.Fatal(err)
	}
	waitProcessed(t, e, "waiting", 5)
	assertJSONEqual(t, query(t, e, "waiting"), numberedItems(1, 5))
	waitFirst(t, store, "orders", 4)
	checkStream(t, e, "orders", 4, 5)
}

// plainStore hides the memory store's Compactor.
type plainStore struct{ eventstore.Store }

// syncBuffer is a log sink safe for the engine's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRetentionIsIgnoredWithAWarningWhenTheStoreCannotCompact(t *testing.T) {
	var logs syncBuffer
	logger, err := core.NewLogger(&logs, core.LogFormatText, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	store := plainStore{eventstore.NewMemory()}
	e := startEngine(t, core.Config{Store: store, Logger: logger, CompactionInterval: 5 * time.Millisecond})
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E", Retention: core.Retention{MaxEvents: 1}})
	ingestJSON(t, e, "orders", numbered(1, 3)...)
	enginetest.Eventually(t, "the retention warning", func() bool {
		return strings.Contains(logs.String(), `msg="stream retention ignored: the event store cannot compact" stream=orders`)
	})
	enginetest.Eventually(t, "3 stored events", func() bool { return version(t, store, "orders") == 3 })
	checkStream(t, e, "orders", 1, 3)
}

func TestApplyStreamRefusesANegativeMaxAge(t *testing.T) {
	e := newEngine(t, core.Config{})
	err := e.ApplyStream(core.StreamSpec{Name: "s", Retention: core.Retention{MaxAge: -time.Second}})
	if !errors.Is(err, core.ErrInvalidSpec) {
		t.Fatalf("ApplyStream with a negative maxAge: got %v, want ErrInvalidSpec", err)
	}
}

// After a restart, a projection's controller may re-apply it only later:
// until then its stored checkpoint holds retention back, on either store.
func TestCompactionKeepsWhatAProjectionNotYetRegisteredAgainHasNotApplied(t *testing.T) {
	for _, backend := range []string{"memory", "disk"} {
		t.Run(backend, func(t *testing.T) {
			cfg := core.Config{CompactionInterval: 5 * time.Millisecond}
			var store eventstore.Store = eventstore.NewMemory()
			var models readmodel.Store = readmodel.NewMemory()
			if backend == "disk" {
				db, err := boltstore.Open(t.TempDir(), boltstore.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = db.Close() })
				store, models = boltstore.NewEventStore(db), boltstore.NewReadModels(db)
			}
			// What a projection left before the restart: 3 events applied.
			if err := models.Apply(context.Background(), "before-restart", nil, readmodel.Checkpoint{"orders": 3}); err != nil {
				t.Fatal(err)
			}
			cfg.Store, cfg.ReadModels = store, models
			e := startEngine(t, cfg)
			mustApplyStream(t, e, core.StreamSpec{Name: witnessStream, DefaultEventName: "Tick", Retention: core.Retention{MaxEvents: 1}})
			mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E", Retention: core.Retention{MaxEvents: 1}})
			ingestJSON(t, e, "orders", numbered(1, 10)...)
			enginetest.Eventually(t, "10 stored events", func() bool { return version(t, store, "orders") == 10 })
			waitCompactionPasses(t, e, store)
			if got := first(t, store, "orders"); got != 4 {
				t.Fatalf("first retained event %d, want 4: the stored checkpoint (3) holds retention back", got)
			}
			// Once it is gone for good, retention goes on.
			if err := models.Delete(context.Background(), "before-restart"); err != nil {
				t.Fatal(err)
			}
			waitFirst(t, store, "orders", 10)
		})
	}
}

// behindModels is a read-model store whose commits lag its Applies, as the
// disk store's may: its listed checkpoints stop at committed.
type behindModels struct {
	*readmodel.Memory
	committed map[string]readmodel.Checkpoint
}

func (m behindModels) Checkpoints(context.Context) (map[string]readmodel.Checkpoint, error) {
	return m.committed, nil
}

func TestCompactionKeepsWhatARegisteredProjectionHasNotCommitted(t *testing.T) {
	store := eventstore.NewMemory()
	models := behindModels{Memory: readmodel.NewMemory(), committed: map[string]readmodel.Checkpoint{"p": {"orders": 3}}}
	e := startEngine(t, core.Config{Store: store, ReadModels: models, CompactionInterval: 5 * time.Millisecond})
	mustApplyStream(t, e, core.StreamSpec{Name: witnessStream, DefaultEventName: "Tick", Retention: core.Retention{MaxEvents: 1}})
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E", Retention: core.Retention{MaxEvents: 1}})
	mustApplyProjection(t, e, appendProjection("p", "orders"))
	ingestJSON(t, e, "orders", numbered(1, 10)...)
	waitProcessed(t, e, "p", 10)
	waitCompactionPasses(t, e, store)
	if got := first(t, store, "orders"); got != 4 {
		t.Fatalf("first retained event %d, want 4: the projection applied 10 but committed 3, and a restart resumes from 3", got)
	}
}
