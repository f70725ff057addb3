package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/boltstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// neverSwap keeps every rebuild beside the read model it would replace, so
// a test can look at both for as long as it likes.
const neverSwap = time.Hour

// orderCount is a Count projection of the events of "orders".
func orderCount(name string) core.ProjectionSpec {
	return core.ProjectionSpec{Spec: projection.Spec{
		Name: name, Streams: []string{"orders"}, StartFrom: projection.Beginning, Type: projection.Count, Key: "n",
	}}
}

// ingestOrders posts n LineAdded events of amount 1 spread over 10 orders,
// in batches.
func ingestOrders(t *testing.T, e *core.Engine, n int) {
	t.Helper()
	for done := 0; done < n; {
		batch := make([]core.Event, 0, 100)
		for ; done < n && len(batch) < cap(batch); done++ {
			batch = append(batch, core.Event{Name: "LineAdded", Payload: fmt.Appendf(nil, `{"order":"o-%d","amount":1}`, done%10)})
		}
		if _, err := e.Ingest(context.Background(), "orders", batch); err != nil {
			t.Fatalf("Ingest: %v", err)
		}
	}
}

// totalsOf is the orderTotals read model after n events of ingestOrders.
func totalsOf(n int) string {
	parts := make([]string, 10)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"o-%d":{"total":%d,"status":"LineAdded"}`, i, n/10)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// readModelStores returns the read models of each backend, and the event
// store to use with them.
func readModelStores(t *testing.T) map[string]core.Config {
	t.Helper()
	db, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() }) // after the engine's cleanup, which closes the stores
	return map[string]core.Config{
		"memory": {},
		"disk":   {Store: boltstore.NewEventStore(db), ReadModels: boltstore.NewReadModels(db)},
	}
}

func rebuildStats(t *testing.T, e *core.Engine, name string) *core.RebuildStats {
	t.Helper()
	st, err := e.ProjectionStats(context.Background(), name)
	if err != nil {
		t.Fatalf("ProjectionStats(%s): %v", name, err)
	}
	return st.Rebuild
}

func TestRebuildKeepsAnsweringTheOldReadModelWhileTheNewOneFollowsTheStream(t *testing.T) {
	for backend, cfg := range readModelStores(t) {
		t.Run(backend, func(t *testing.T) {
			cfg.RebuildCheckInterval = neverSwap
			e := startEngine(t, cfg)
			mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E"})
			mustApplyProjection(t, e, orderCount("p"))
			ingestOrders(t, e, 500)
			waitReadModel(t, e, "p", `{"n":500}`)

			mustApplyProjection(t, e, orderTotals("p", "orders"))
			enginetest.Eventually(t, "the rebuild to fold every stored event", func() (bool, string) {
				rs := rebuildStats(t, e, "p")
				return rs != nil && rs.Applied == 500 && rs.Total == 500, fmt.Sprintf("%+v", rs)
			})
			assertJSONEqual(t, query(t, e, "p"), `{"n":500}`)
			// The old read model follows its stream meanwhile, and so does
			// the new one.
			ingestOrders(t, e, 10)
			waitReadModel(t, e, "p", `{"n":510}`)
			if v, err := e.QueryKey(context.Background(), "p", "n"); err != nil || string(v) != "510" {
				t.Errorf("QueryKey(p, n) during the rebuild: got %s, %v; want 510", v, err)
			}
			enginetest.Eventually(t, "the rebuild to follow the new events", func() (bool, string) {
				rs := rebuildStats(t, e, "p")
				return rs != nil && rs.Applied == 510 && rs.Total == 510, fmt.Sprintf("%+v", rs)
			})
		})
	}
}

// TestQueriesAnswerTheOldReadModelThenTheNewOneAndNothingInBetween queries
// the read model without pause while it is rebuilt: every answer is the
// whole old read model or the whole new one, the old one until the swap.
func TestQueriesAnswerTheOldReadModelThenTheNewOneAndNothingInBetween(t *testing.T) {
	const events = 3000
	for backend, cfg := range readModelStores(t) {
		t.Run(backend, func(t *testing.T) {
			cfg.RebuildCheckInterval = 5 * time.Millisecond
			e := startEngine(t, cfg)
			mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E"})
			mustApplyProjection(t, e, orderCount("p"))
			ingestOrders(t, e, events)
			oldModel := fmt.Sprintf(`{"n":%d}`, events)
			waitReadModel(t, e, "p", oldModel)
			var old, rebuilt map[string]any
			mustUnmarshal(t, oldModel, &old)
			mustUnmarshal(t, totalsOf(events), &rebuilt)

			type answer struct {
				doc          map[string]any
				afterTheEdit bool
			}
			var answers []answer
			var edited atomic.Bool
			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Go(func() {
				for {
					after := edited.Load()
					doc, err := e.Query(context.Background(), "p")
					if err != nil {
						t.Errorf("Query: %v", err)
						return
					}
					var m map[string]any
					mustUnmarshal(t, string(doc), &m)
					answers = append(answers, answer{m, after})
					select {
					case <-stop:
						return
					default:
					}
				}
			})
			mustApplyProjection(t, e, orderTotals("p", "orders"))
			edited.Store(true)
			enginetest.Eventually(t, "the rebuilt read model to replace the old one", func() (bool, string) {
				st, err := e.ProjectionStats(context.Background(), "p")
				return err == nil && st.Rebuild == nil && st.Processed == events, fmt.Sprintf("%+v, %v", st, err)
			})
			close(stop)
			wg.Wait()
			// The querier may have stopped with an answer from just before
			// the swap; one more, after it, ends the sequence.
			answers = append(answers, answer{query(t, e, "p"), true})
			swapped, oldAfterTheEdit := false, 0
			for i, a := range answers {
				switch {
				case reflect.DeepEqual(a.doc, rebuilt):
					swapped = true
				case reflect.DeepEqual(a.doc, old) && !swapped:
					if a.afterTheEdit {
						oldAfterTheEdit++
					}
				default:
					t.Fatalf("answer %d of %d: got %v, want the old read model until the swap and the new one after", i, len(answers), a.doc)
				}
			}
			// How many answers the old read model gave after the edit
			// depends on the scheduler (a quick rebuild may be swapped in
			// before the querier runs again); that it keeps answering until
			// the swap is TestTheOldReadModelAnswersUntilTheRebuiltOneIsSwappedIn's.
			t.Logf("%d answers of the old read model after the edit", oldAfterTheEdit)
			if !swapped {
				t.Error("no answer of the rebuilt read model")
			}
			assertJSONEqual(t, query(t, e, "p"), totalsOf(events))
			if rs := rebuildStats(t, e, "p"); rs != nil {
				t.Errorf("rebuild stats after the swap: got %+v, want none", rs)
			}
			// The rebuilt read model goes on as the projection's own.
			ingestOrders(t, e, 10)
			waitReadModel(t, e, "p", totalsOf(events+10))
		})
	}
}

// With the swap held off (the check runs once an hour), a rebuild that has
// caught up still leaves queries to the old read model: it is replaced only
// by the swap, never piecemeal.
func TestTheOldReadModelAnswersUntilTheRebuiltOneIsSwappedIn(t *testing.T) {
	const events = 500
	for backend, cfg := range readModelStores(t) {
		t.Run(backend, func(t *testing.T) {
			cfg.RebuildCheckInterval = time.Hour
			e := startEngine(t, cfg)
			mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E"})
			mustApplyProjection(t, e, orderCount("p"))
			ingestOrders(t, e, events)
			oldModel := fmt.Sprintf(`{"n":%d}`, events)
			waitReadModel(t, e, "p", oldModel)
			mustApplyProjection(t, e, orderTotals("p", "orders"))
			enginetest.Eventually(t, "the rebuild to catch up", func() (bool, string) {
				rs := rebuildStats(t, e, "p")
				return rs != nil && rs.Applied == rs.Total && rs.Total == events, fmt.Sprintf("%+v", rs)
			})
			assertJSONEqual(t, query(t, e, "p"), oldModel)
		})
	}
}

func mustUnmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
}

func TestAnEditThatDoesNotCompileLeavesTheReadModelAndItsRebuildAlone(t *testing.T) {
	e := startEngine(t, core.Config{RebuildCheckInterval: neverSwap})
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E"})
	mustApplyProjection(t, e, orderCount("p"))
	ingestOrders(t, e, 20)
	waitReadModel(t, e, "p", `{"n":20}`)

	bad := orderTotals("p", "orders")
	bad.Reducer.Expression = "{'total': state.total + event.payload.amount"
	if err := e.ApplyProjection(context.Background(), bad); !errors.Is(err, core.ErrInvalidSpec) ||
		!strings.Contains(err.Error(), "readModel.reduce.expression") {
		t.Fatalf("ApplyProjection of a reduce expression that does not compile: got %v, want ErrInvalidSpec naming the field", err)
	}
	if rs := rebuildStats(t, e, "p"); rs != nil {
		t.Fatalf("rebuild stats after a refused edit: got %+v, want none", rs)
	}
	ingestOrders(t, e, 1)
	waitReadModel(t, e, "p", `{"n":21}`)

	// A refused edit leaves a running rebuild as it was, too.
	mustApplyProjection(t, e, orderTotals("p", "orders"))
	if err := e.ApplyProjection(context.Background(), bad); !errors.Is(err, core.ErrInvalidSpec) {
		t.Fatalf("ApplyProjection during a rebuild: got %v, want ErrInvalidSpec", err)
	}
	enginetest.Eventually(t, "the rebuild to go on", func() (bool, string) {
		rs := rebuildStats(t, e, "p")
		return rs != nil && rs.Applied == 21, fmt.Sprintf("%+v", rs)
	})
}

func TestEditingBackDuringARebuildDropsItAndKeepsTheReadModel(t *testing.T) {
	models := readmodel.NewMemory()
	e := startEngine(t, core.Config{ReadModels: models, RebuildCheckInterval: neverSwap})
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E"})
	mustApplyProjection(t, e, orderCount("p"))
	ingestOrders(t, e, 20)
	waitReadModel(t, e, "p", `{"n":20}`)

	mustApplyProjection(t, e, orderTotals("p", "orders"))
	if rebuildStats(t, e, "p") == nil {
		t.Fatal("rebuild stats after an edit of the read model: got none, want a rebuild")
	}
	if got := storedNames(t, models); len(got) != 2 {
		t.Fatalf("stored read models during the rebuild: got %v, want the projection's and its rebuild's", got)
	}
	// Only the pipeline differs from the read model queries read: no rebuild.
	back := orderCount("p")
	back.Pipeline = ""
	mustApplyProjection(t, e, back)
	if rs := rebuildStats(t, e, "p"); rs != nil {
		t.Fatalf("rebuild stats after editing back: got %+v, want none", rs)
	}
	if got := storedNames(t, models); !reflect.DeepEqual(got, []string{"p"}) {
		t.Errorf("stored read models after editing back: got %v, want only p (the rebuild's deleted)", got)
	}
	ingestOrders(t, e, 1)
	waitReadModel(t, e, "p", `{"n":21}`)
}

func TestRemovingAProjectionDuringARebuildDeletesBothReadModels(t *testing.T) {
	models := readmodel.NewMemory()
	e := startEngine(t, core.Config{ReadModels: models, RebuildCheckInterval: neverSwap})
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E"})
	mustApplyProjection(t, e, orderCount("p"))
	mustApplyProjection(t, e, orderTotals("p", "orders"))
	if err := e.RemoveProjection(context.Background(), "p"); err != nil {
		t.Fatalf("RemoveProjection: %v", err)
	}
	if got := storedNames(t, models); len(got) != 0 {
		t.Errorf("stored read models after removing the projection: got %v, want none", got)
	}
}

// storedNames lists the read models in models, sorted.
func storedNames(t *testing.T, models readmodel.CheckpointLister) []string {
	t.Helper()
	all, err := models.Checkpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// A restart in the middle of a rebuild: the rebuild of the spec applied
// after the restart goes on, and the old read model answers until it has
// caught up; a rebuild of a spec no longer applied is deleted.
func TestARebuildGoesOnAfterARestart(t *testing.T) {
	db, err := boltstore.Open(t.TempDir(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	disk := func(interval time.Duration) core.Config {
		return core.Config{Store: boltstore.NewEventStore(db), ReadModels: boltstore.NewReadModels(db), RebuildCheckInterval: interval}
	}

	first := newEngine(t, disk(neverSwap))
	// runUntilStopped closes first; a second engine opens the same data.
	stopFirst := runUntilStopped(t, first)
	mustApplyStream(t, first, core.StreamSpec{Name: "orders", DefaultEventName: "E"})
	mustApplyProjection(t, first, orderCount("p"))
	mustApplyProjection(t, first, orderCount("q"))
	ingestOrders(t, first, 50)
	waitReadModel(t, first, "p", `{"n":50}`)
	waitReadModel(t, first, "q", `{"n":50}`)
	mustApplyProjection(t, first, orderTotals("p", "orders"))
	mustApplyProjection(t, first, orderTotals("q", "orders"))
	enginetest.Eventually(t, "both rebuilds to fold every event", func() (bool, string) {
		p, q := rebuildStats(t, first, "p"), rebuildStats(t, first, "q")
		return p != nil && p.Applied == 50 && q != nil && q.Applied == 50, fmt.Sprintf("%+v %+v", p, q)
	})
	stopFirst()

	secondCfg := disk(5 * time.Millisecond)
	second := newEngine(t, secondCfg)
	mustApplyStream(t, second, core.StreamSpec{Name: "orders", DefaultEventName: "E"})
	// p comes back with the spec it was being rebuilt for, q with its old one.
	mustApplyProjection(t, second, orderTotals("p", "orders"))
	mustApplyProjection(t, second, orderCount("q"))
	if rs := rebuildStats(t, second, "p"); rs == nil || rs.Applied != 50 {
		t.Fatalf("rebuild of p after the restart: got %+v, want it resumed at 50", rs)
	}
	assertJSONEqual(t, query(t, second, "p"), `{"n":50}`)
	if rs := rebuildStats(t, second, "q"); rs != nil {
		t.Fatalf("rebuild of q after the restart: got %+v, want none (its spec is the old one again)", rs)
	}
	runEngine(t, second)
	waitReadModel(t, second, "p", totalsOf(50))
	ingestOrders(t, second, 10)
	waitReadModel(t, second, "p", totalsOf(60))
	waitReadModel(t, second, "q", `{"n":60}`)
	if got := storedNames(t, secondCfg.ReadModels.(readmodel.CheckpointLister)); !reflect.DeepEqual(got, []string{"p", "q"}) {
		t.Errorf("stored read models: got %v, want p and q only", got)
	}
}

// runUntilStopped runs e until the returned function is called, which
// waits for Run to return and closes e.
func runUntilStopped(t *testing.T, e *core.Engine) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
			if err := e.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// A rebuild that cannot run yet (its pipeline does not exist) holds
// retention back from every event it has not folded, as a projection does;
// once it runs, it folds what was kept.
func TestARebuildHoldsRetentionBackUntilItHasFoldedTheEvents(t *testing.T) {
	store := eventstore.NewMemory()
	e := compactingEngine(t, store)
	// The retention comes once the rebuild waits: before, a compaction
	// pass may rightly drop what the first projection has folded.
	orders := core.StreamSpec{Name: "orders", DefaultEventName: "E"}
	mustApplyStream(t, e, orders)
	mustApplyProjection(t, e, orderCount("p"))
	ingestOrders(t, e, 20)
	waitReadModel(t, e, "p", `{"n":20}`)

	waiting := orderTotals("p", "orders")
	waiting.Pipeline = "later"
	if err := e.ApplyProjection(context.Background(), waiting); !errors.Is(err, core.ErrPipelineNotFound) {
		t.Fatalf("ApplyProjection with a missing pipeline: got %v, want ErrPipelineNotFound", err)
	}
	orders.Retention = core.Retention{MaxEvents: 1}
	mustApplyStream(t, e, orders)
	waitCompactionPasses(t, e, store)
	checkStream(t, e, "orders", 1, 20)
	assertJSONEqual(t, query(t, e, "p"), `{"n":20}`)

	if err := e.ApplyPipeline(core.PipelineSpec{Name: "later", Middleware: core.DefaultPipeline().Middleware}); err != nil {
		t.Fatal(err)
	}
	waitReadModel(t, e, "p", totalsOf(20))
	waitFirst(t, store, "orders", 20)
}
