package core_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

// orderTotals is a Reduce projection of each order's total and status, the
// order taken from the payload.
func orderTotals(name string, streams ...string) core.ProjectionSpec {
	return core.ProjectionSpec{Spec: projection.Spec{
		Name: name, Streams: streams, StartFrom: projection.Beginning, Type: projection.Reduce,
		KeyExpression: "event.payload.order",
		Reducer: projection.Reducer{
			Initial:    "{'total': 0, 'status': 'new'}",
			Expression: "{'total': state.total + event.payload.amount, 'status': event.name}",
		},
	}}
}

// ingestOrder posts one event of the given name to the stream "orders".
func ingestOrder(t *testing.T, e *core.Engine, name, payload string) {
	t.Helper()
	if _, err := e.Ingest(context.Background(), "orders", []core.Event{{Name: name, Payload: []byte(payload)}}); err != nil {
		t.Fatalf("Ingest(orders): %v", err)
	}
}

func TestReduceReadModelFoldsEachKeyAndDeadLettersWhatFails(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E"})
	mustApplyProjection(t, e, orderTotals("totals", "orders"))
	ingestOrder(t, e, "OrderPlaced", `{"order":"o-1","amount":0}`)
	ingestOrder(t, e, "LineAdded", `{"order":"o-1","amount":30}`)
	ingestOrder(t, e, "LineAdded", `{"order":"o-2","amount":5}`)
	ingestOrder(t, e, "LineAdded", `{"order":"o-1","amount":"twelve"}`) // int + string fails
	ingestOrder(t, e, "OrderPaid", `{"order":"o-1","amount":0}`)
	st := waitProcessed(t, e, "totals", 5)
	if st.DeadLettered != 1 {
		t.Errorf("dead-lettered: got %d, want 1 (the event whose amount is a string)", st.DeadLettered)
	}
	assertJSONEqual(t, query(t, e, "totals"),
		`{"o-1":{"total":30,"status":"OrderPaid"},"o-2":{"total":5,"status":"LineAdded"}}`)
	waitStreamHolds(t, e, "dead", 1)
}

func TestQueryKeyAnswersOneKeyOfEveryReadModelType(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "orders", DefaultEventName: "E"})
	specs := make([]core.ProjectionSpec, 0, 4)
	specs = append(specs, orderTotals("reduce", "orders"))
	for _, typ := range []projection.ReadModelType{projection.Append, projection.Latest, projection.Count} {
		specs = append(specs, core.ProjectionSpec{Spec: projection.Spec{
			Name: string(typ), Streams: []string{"orders"}, StartFrom: projection.Beginning,
			Type: typ, KeyExpression: "event.payload.order",
		}})
	}
	for _, s := range specs {
		mustApplyProjection(t, e, s)
	}
	ingestOrder(t, e, "LineAdded", `{"order":"a/b c","amount":2}`)
	ingestOrder(t, e, "LineAdded", `{"order":"a/b c","amount":3}`)
	ingestOrder(t, e, "LineAdded", `{"order":"other","amount":1}`)
	for _, s := range specs {
		waitProcessed(t, e, s.Name, 3)
	}
	want := map[string]string{
		"reduce": `{"status":"LineAdded","total":5}`,
		"Append": `[{"order":"a/b c","amount":2},{"order":"a/b c","amount":3}]`,
		"Latest": `{"order":"a/b c","amount":3}`,
		"Count":  `2`,
	}
	for name, w := range want {
		got, err := e.QueryKey(context.Background(), name, "a/b c")
		if err != nil || string(got) != w {
			t.Errorf("QueryKey(%s, %q): got %s, %v; want %s", name, "a/b c", got, err, w)
		}
		if _, err := e.QueryKey(context.Background(), name, "missing"); !errors.Is(err, core.ErrKeyNotFound) {
			t.Errorf("QueryKey(%s, missing): got %v, want ErrKeyNotFound", name, err)
		}
	}
	if _, err := e.QueryKey(context.Background(), "nope", "a/b c"); !errors.Is(err, core.ErrProjectionNotFound) {
		t.Errorf("QueryKey of an unknown projection: got %v, want ErrProjectionNotFound", err)
	}
}
