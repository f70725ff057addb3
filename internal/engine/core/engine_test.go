package core_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginetest"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

const itemSchema = `{"type":"record","name":"Item","fields":[
  {"name":"foo","type":"string"},{"name":"n","type":"int"}]}`

func itemsStream() core.StreamSpec {
	return core.StreamSpec{
		Name:             "default/items-events",
		ContentTypes:     []string{serde.JSON, serde.Avro, serde.Protobuf},
		DefaultEventName: "ItemCreated",
		Schema:           serde.Schema{Avro: itemSchema, ProtobufMessageType: "google.protobuf.Struct"},
	}
}

// The seed library's example: items posted as JSON, Avro and Protobuf end up,
// decoded and in order, in the "items" list of an Append read model.
func TestItemsInEveryFormatFoldIntoTheAppendReadModelInOrder(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, itemsStream())
	mustApplyProjection(t, e, appendProjection("default/items", "default/items-events"))

	schema := avro.MustParse(itemSchema)
	avroBytes, err := avro.Marshal(schema, map[string]any{"foo": "b", "n": 2})
	if err != nil {
		t.Fatal(err)
	}
	st, err := structpb.NewStruct(map[string]any{"foo": "c", "n": 3})
	if err != nil {
		t.Fatal(err)
	}
	protoBytes, err := proto.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ev := range []core.Event{
		{ContentType: "application/json", Payload: []byte(`{"foo":"a","n":1}`)},
		{ContentType: "application/avro", Payload: avroBytes},
		{ContentType: "application/x-protobuf", Payload: protoBytes},
	} {
		if _, err := e.Ingest(ctx, "default/items-events", []core.Event{ev}); err != nil {
			t.Fatalf("Ingest(%s): %v", ev.ContentType, err)
		}
	}
	waitProcessed(t, e, "default/items", 3)
	assertJSONEqual(t, query(t, e, "default/items"),
		`{"items":[{"foo":"a","n":1},{"foo":"b","n":2},{"foo":"c","n":3}]}`)

	ss, err := e.StreamStats(ctx, "default/items-events")
	if err != nil {
		t.Fatal(err)
	}
	if ss.LastSequence != 3 || ss.Subscribers != 1 {
		t.Errorf("stream stats = %+v, want LastSequence 3 and 1 subscriber", ss)
	}
}

func TestIngestRefusesWhatTheStreamCannotTake(t *testing.T) {
	e := newEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	ctx := context.Background()

	_, err := e.Ingest(ctx, "missing", []core.Event{{Payload: []byte(`{}`)}})
	if !errors.Is(err, core.ErrStreamNotFound) {
		t.Errorf("unknown stream: err = %v, want ErrStreamNotFound", err)
	}
	_, err = e.Ingest(ctx, "s", []core.Event{{ContentType: "application/avro", Payload: []byte{2}}})
	if !errors.Is(err, serde.ErrUnsupportedContentType) {
		t.Errorf("content type the stream does not accept: err = %v, want ErrUnsupportedContentType", err)
	}
	_, err = e.Ingest(ctx, "s", []core.Event{{Payload: []byte(`{}`)}, {Payload: []byte(`{"a":`)}})
	var pe *core.PayloadError
	if !errors.As(err, &pe) || pe.Index != 1 {
		t.Errorf("bad JSON in the second event: err = %v, want a PayloadError for index 1", err)
	}
	if n := e.Stats().OutboxPending; n != 0 {
		t.Errorf("outbox holds %d events after refused requests, want 0 (all or nothing)", n)
	}
}

func TestIngestWithoutAnyEventNameIsRefused(t *testing.T) {
	e := newEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s"})
	_, err := e.Ingest(context.Background(), "s", []core.Event{{Payload: []byte(`{}`)}})
	if !errors.Is(err, core.ErrNoEventName) {
		t.Fatalf("err = %v, want ErrNoEventName", err)
	}
}

func TestFullOutboxRefusesIngestAndStoresNothing(t *testing.T) {
	e := newEngine(t, core.Config{Outbox: outbox.NewMemory(2)}) // not running: nothing drains
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	ingestJSON(t, e, "s", `{}`, `{}`)
	_, err := e.Ingest(context.Background(), "s", []core.Event{{Payload: []byte(`{}`)}})
	if !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("err = %v, want outbox.ErrFull", err)
	}
	if n := e.Stats().OutboxPending; n != 2 {
		t.Fatalf("outbox holds %d events, want 2", n)
	}
}

func TestPostingTheSameIDTwiceStoresTheEventOnce(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	mustApplyProjection(t, e, appendProjection("p", "s"))
	ctx := context.Background()
	for range 2 {
		msgs, err := e.Ingest(ctx, "s", []core.Event{{ID: "order-1", Payload: []byte(`{"n":1}`)}})
		if err != nil || msgs[0].ID != "order-1" {
			t.Fatalf("Ingest = %v, %v; want id order-1 accepted", msgs, err)
		}
	}
	ingestJSON(t, e, "s", `{"n":2}`)
	waitProcessed(t, e, "p", 2)
	events, err := e.ReadStream(ctx, "s", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].ID != "order-1" {
		t.Fatalf("stream holds %d events (first %q), want 2 with order-1 first", len(events), events[0].ID)
	}
	assertJSONEqual(t, query(t, e, "p"), `{"items":[{"n":1},{"n":2}]}`)
}

func TestLatestAndCountReadModelsWithKeyExpression(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	for _, typ := range []projection.ReadModelType{projection.Latest, projection.Count} {
		mustApplyProjection(t, e, core.ProjectionSpec{Spec: projection.Spec{
			Name: string(typ), Streams: []string{"s"}, StartFrom: projection.Beginning,
			Type: typ, KeyExpression: "event.payload.sku",
		}})
	}
	ingestJSON(t, e, "s", `{"sku":"a","q":1}`, `{"sku":"b","q":1}`, `{"sku":"a","q":2}`)
	waitProcessed(t, e, "Latest", 3)
	waitProcessed(t, e, "Count", 3)
	assertJSONEqual(t, query(t, e, "Latest"), `{"a":{"sku":"a","q":2},"b":{"sku":"b","q":1}}`)
	assertJSONEqual(t, query(t, e, "Count"), `{"a":2,"b":1}`)
}

// A projection created after events exist replays them and then follows
// live events, with no gap and no duplicate, while ingest goes on.
func TestProjectionCreatedLaterReplaysThenFollowsLiveWithoutGapOrDuplicate(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E", BacklogLimit: 8})
	const total = 2000
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range total {
			ingestJSON(t, e, "s", strconv.Itoa(i))
		}
	})
	enginetest.Eventually(t, "some events to be stored", func() bool {
		st, _ := e.StreamStats(context.Background(), "s")
		return st.LastSequence > 200
	})
	mustApplyProjection(t, e, appendProjection("late", "s"))
	wg.Wait()
	st := waitProcessed(t, e, "late", total)
	if st.Lag != 0 {
		t.Errorf("lag = %d after all events settled, want 0", st.Lag)
	}
	items := query(t, e, "late")["items"].([]any)
	for i, v := range items {
		if v != float64(i) && v != int64(i) {
			t.Fatalf("items[%d] = %v, want %d (every event once, in order)", i, v, i)
		}
	}
}

func TestLatestProjectionSkipsEventsStoredBeforeIt(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	mustApplyProjection(t, e, appendProjection("all", "s"))
	ingestJSON(t, e, "s", `1`, `2`)
	waitProcessed(t, e, "all", 2)
	spec := appendProjection("new", "s")
	spec.StartFrom = projection.Latest
	mustApplyProjection(t, e, spec)
	ingestJSON(t, e, "s", `3`)
	waitProcessed(t, e, "new", 1)
	assertJSONEqual(t, query(t, e, "new"), `{"items":[3]}`)
}

// Editing the pipeline re-wires the running projection: events keep flowing
// and each is applied exactly once.
func TestEditingThePipelineRewiresLiveWithoutLossOrRepeat(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	if err := e.ApplyPipeline(core.PipelineSpec{Name: "pipe", Middleware: []core.MiddlewareSpec{{Type: core.Deserialize}}}); err != nil {
		t.Fatal(err)
	}
	spec := appendProjection("p", "s")
	spec.Pipeline = "pipe"
	mustApplyProjection(t, e, spec)

	const total = 1000
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range total {
			ingestJSON(t, e, "s", strconv.Itoa(i))
		}
	})
	for i := range 20 {
		mw := []core.MiddlewareSpec{{Type: core.Deserialize}, {Type: core.Retry}}
		if i%2 == 0 {
			mw = append(mw, core.MiddlewareSpec{Type: core.Filter, FilterExpression: "event.name == 'E'"})
		}
		if err := e.ApplyPipeline(core.PipelineSpec{Name: "pipe", Middleware: mw}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	waitProcessed(t, e, "p", total)
	items := query(t, e, "p")["items"].([]any)
	if len(items) != total {
		t.Fatalf("read model holds %d items, want %d", len(items), total)
	}
	for i, v := range items {
		if fmt.Sprint(v) != strconv.Itoa(i) {
			t.Fatalf("items[%d] = %v, want %d", i, v, i)
		}
	}
}

// A stream added to a projection's list is read from its start (for
// Beginning), and the read model built so far is kept.
func TestAddingAStreamToAProjectionKeepsItsReadModelAndReadsTheNewStream(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "a", DefaultEventName: "E"})
	mustApplyStream(t, e, core.StreamSpec{Name: "b", DefaultEventName: "E"})
	spec := core.ProjectionSpec{Spec: projection.Spec{
		Name: "p", Streams: []string{"a"}, StartFrom: projection.Beginning, Type: projection.Count, KeyExpression: "event.stream",
	}}
	mustApplyProjection(t, e, spec)
	ingestJSON(t, e, "a", "1", "2")
	ingestJSON(t, e, "b", "3")
	waitReadModel(t, e, "p", `{"a":2}`)

	spec.Streams = []string{"a", "b"}
	mustApplyProjection(t, e, spec)
	ingestJSON(t, e, "a", "4")
	ingestJSON(t, e, "b", "5")
	waitReadModel(t, e, "p", `{"a":3,"b":2}`)
}

// For a Latest projection, a stream added to its list is read from the
// stream's end at the time of the edit.
func TestAddingAStreamToALatestProjectionStartsAtThatStreamsEnd(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "a", DefaultEventName: "E"})
	mustApplyStream(t, e, core.StreamSpec{Name: "b", DefaultEventName: "E"})
	spec := core.ProjectionSpec{Spec: projection.Spec{
		Name: "latest", Streams: []string{"a"}, StartFrom: projection.Latest, Type: projection.Count, KeyExpression: "event.stream",
	}}
	mustApplyProjection(t, e, spec)
	ingestJSON(t, e, "a", "1")
	ingestJSON(t, e, "b", "2")
	waitReadModel(t, e, "latest", `{"a":1}`)
	enginetest.Eventually(t, "stream b to store its event", func() bool {
		st, err := e.StreamStats(context.Background(), "b")
		return err == nil && st.LastSequence == 1
	})

	spec.Streams = []string{"a", "b"}
	mustApplyProjection(t, e, spec)
	ingestJSON(t, e, "b", "3")
	waitReadModel(t, e, "latest", `{"a":1,"b":1}`)
}

func TestInvalidPipelineIsRefusedAndTheOldOneKeepsWorking(t *testing.T) {
	e := newEngine(t, core.Config{})
	good := core.PipelineSpec{Name: "p", Middleware: []core.MiddlewareSpec{{Type: core.Deserialize}}}
	if err := e.ApplyPipeline(good); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]core.MiddlewareSpec{
		"CEL that does not compile": {Type: core.Filter, FilterExpression: "event.name =="},
		"unknown type":              {Type: "Compress"},
		"settings of another type":  {Type: core.Logging, TimeoutAfter: 1},
		"timeout without duration":  {Type: core.Timeout},
	} {
		err := e.ApplyPipeline(core.PipelineSpec{Name: "p", Middleware: []core.MiddlewareSpec{bad}})
		if !errors.Is(err, core.ErrInvalidSpec) {
			t.Errorf("%s: err = %v, want ErrInvalidSpec", name, err)
		}
	}
}

func TestProjectionWaitsForMissingStreamAndPipelineThenStartsByItself(t *testing.T) {
	e := startEngine(t, core.Config{})
	spec := appendProjection("p", "s")
	spec.Pipeline = "pipe"
	if err := e.ApplyProjection(context.Background(), spec); !errors.Is(err, core.ErrStreamNotFound) {
		t.Fatalf("err = %v, want ErrStreamNotFound", err)
	}
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	st, _ := e.ProjectionStats(context.Background(), "p")
	if !errors.Is(st.Waiting, core.ErrPipelineNotFound) {
		t.Fatalf("waiting = %v, want ErrPipelineNotFound once the stream exists", st.Waiting)
	}
	ingestJSON(t, e, "s", `1`)
	if err := e.ApplyPipeline(core.PipelineSpec{Name: "pipe", Middleware: []core.MiddlewareSpec{{Type: core.Deserialize}}}); err != nil {
		t.Fatal(err)
	}
	st = waitProcessed(t, e, "p", 1)
	if st.Waiting != nil {
		t.Fatalf("waiting = %v after both exist, want nil", st.Waiting)
	}
}

// A key expression that fails on one event dead-letters that event, with
// headers saying why, and the projection carries on with the next.
func TestKeyExpressionErrorDeadLettersTheEventAndTheRestCarryOn(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := startEngine(t, core.Config{Metrics: m})
	mustApplyStream(t, e, core.StreamSpec{Name: "ns/s", DefaultEventName: "E", DeadLetterStream: "ns/dead"})
	mustApplyProjection(t, e, core.ProjectionSpec{Spec: projection.Spec{
		Name: "ns/by-sku", Streams: []string{"ns/s"}, StartFrom: projection.Beginning,
		Type: projection.Count, KeyExpression: "event.payload.sku",
	}})
	ingestJSON(t, e, "ns/s", `{"sku":"a"}`, `{"nosku":true}`, `{"sku":"a"}`)
	st := waitProcessed(t, e, "ns/by-sku", 3)
	if st.DeadLettered != 1 || st.Processed != 2 {
		t.Fatalf("stats = %+v, want 2 processed and 1 dead-lettered", st)
	}
	assertJSONEqual(t, query(t, e, "ns/by-sku"), `{"a":2}`)

	dead := waitDeadLetters(t, e, 1)
	h := dead[0].Headers
	if h[engine.HeaderDeadLetterStream] != "ns/s" || h[engine.HeaderDeadLetterHandler] != "ns/by-sku" ||
		h[engine.HeaderDeadLetterError] == "" || h[engine.HeaderDeadLetterAttempts] != "1" {
		t.Fatalf("dead-letter headers = %v, want stream ns/s, handler ns/by-sku, an error, 1 attempt", h)
	}
	if fmt.Sprint(dead[0].Value) != "map[nosku:true]" {
		t.Errorf("dead-lettered payload decodes to %v, want map[nosku:true]", dead[0].Value)
	}
	if got := counterValue(t, reg, "eventsourcing_dead_lettered_total"); got != 1 {
		t.Errorf("eventsourcing_dead_lettered_total = %v, want 1", got)
	}
}

// counterValue sums the counter family name in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// A subscriber queue of one and many events: the projections fall behind
// their queues again and again and catch up from the store, losing nothing.
func TestProjectionsFallingBehindTheirQueuesLoseNoEvent(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E", BacklogLimit: 1})
	for i := range 3 {
		mustApplyProjection(t, e, appendProjection("p"+strconv.Itoa(i), "s"))
	}
	const total = 3000
	for i := range total / 100 {
		batch := make([]string, 100)
		for j := range batch {
			batch[j] = strconv.Itoa(i*100 + j)
		}
		ingestJSON(t, e, "s", batch...)
	}
	for i := range 3 {
		waitProcessed(t, e, "p"+strconv.Itoa(i), total)
	}
}

func TestRemovingAProjectionDeletesItsReadModel(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	mustApplyProjection(t, e, appendProjection("p", "s"))
	ingestJSON(t, e, "s", `1`)
	waitProcessed(t, e, "p", 1)
	if err := e.RemoveProjection(context.Background(), "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Query(context.Background(), "p"); !errors.Is(err, core.ErrProjectionNotFound) {
		t.Fatalf("Query after remove: err = %v, want ErrProjectionNotFound", err)
	}
	// Applying it again starts from scratch and replays the stream.
	mustApplyProjection(t, e, appendProjection("p", "s"))
	waitProcessed(t, e, "p", 1)
	assertJSONEqual(t, query(t, e, "p"), `{"items":[1]}`)
}

func TestRemovedStreamRefusesIngestAndReads(t *testing.T) {
	e := newEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	e.RemoveStream("s")
	if _, err := e.Ingest(context.Background(), "s", []core.Event{{Payload: []byte(`1`)}}); !errors.Is(err, core.ErrStreamNotFound) {
		t.Errorf("Ingest: err = %v, want ErrStreamNotFound", err)
	}
	if _, err := e.ReadStream(context.Background(), "s", 0, 1); !errors.Is(err, core.ErrStreamNotFound) {
		t.Errorf("ReadStream: err = %v, want ErrStreamNotFound", err)
	}
}

func TestInvalidAvroSchemaIsRefusedWithItsReason(t *testing.T) {
	e := newEngine(t, core.Config{})
	err := e.ApplyStream(core.StreamSpec{Name: "s", ContentTypes: []string{serde.Avro}, Schema: serde.Schema{Avro: `{"type":"record"}`}})
	if !errors.Is(err, core.ErrInvalidSpec) || !errors.Is(err, serde.ErrInvalidSchema) {
		t.Fatalf("err = %v, want ErrInvalidSpec wrapping serde.ErrInvalidSchema", err)
	}
}

// Shutdown flushes the outbox: every accepted event is stored before Run returns.
func TestRunFlushesTheOutboxOnShutdown(t *testing.T) {
	e := newEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	for i := range 50 {
		ingestJSON(t, e, "s", strconv.Itoa(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // already stopping: Run must still drain what was accepted
	if err := e.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st, err := e.StreamStats(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSequence != 50 {
		t.Fatalf("stored %d events after shutdown, want 50", st.LastSequence)
	}
	if _, err := e.Ingest(context.Background(), "s", []core.Event{{Payload: []byte(`1`)}}); !errors.Is(err, core.ErrStopped) {
		t.Fatalf("Ingest after shutdown: err = %v, want ErrStopped", err)
	}
}

// Queue depths reach Prometheus on the stats period, not per event.
func TestQueueDepthGaugeIsRefreshedOnThePeriod(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := startEngine(t, core.Config{Metrics: m, StatsInterval: 10 * time.Millisecond})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	mustApplyProjection(t, e, appendProjection("p", "s"))
	enginetest.Eventually(t, "a queue-depth series for stream s and projection p", func() bool {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != "eventsourcing_queue_depth" {
				continue
			}
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["stream"] == "s" && labels["subscriber"] == "p" {
					return true
				}
			}
		}
		return false
	})
}

// Projections that read no value only validate JSON payloads; one whose
// pipeline filters on the payload still sees every value decoded.
func TestFilterOnThePayloadSeesDecodedValues(t *testing.T) {
	e := startEngine(t, core.Config{})
	mustApplyStream(t, e, core.StreamSpec{Name: "s", DefaultEventName: "E"})
	err := e.ApplyPipeline(core.PipelineSpec{Name: "big", Middleware: []core.MiddlewareSpec{
		{Type: core.Deserialize},
		{Type: core.Filter, FilterExpression: "event.payload.n > 1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	spec := appendProjection("big-items", "s")
	spec.Pipeline = "big"
	mustApplyProjection(t, e, spec)
	mustApplyProjection(t, e, appendProjection("all-items", "s"))
	ingestJSON(t, e, "s", `{"n":1}`, `{"n":2}`, `{"n":3}`)
	waitProcessed(t, e, "big-items", 3)
	waitProcessed(t, e, "all-items", 3)
	assertJSONEqual(t, query(t, e, "big-items"), `{"items":[{"n":2},{"n":3}]}`)
	assertJSONEqual(t, query(t, e, "all-items"), `{"items":[{"n":1},{"n":2},{"n":3}]}`)
}

// stoppedOutbox is an outbox that has stopped taking writes for good.
type stoppedOutbox struct {
	*outbox.Memory
	failure error
}

func (o stoppedOutbox) Failure() error { return o.failure }

func TestReadyAndHealthyReportAnOutboxThatStoppedTakingWrites(t *testing.T) {
	healthy := newEngine(t, core.Config{Outbox: stoppedOutbox{Memory: outbox.NewMemory(0)}})
	if err := healthy.Ready(); err != nil {
		t.Fatalf("Ready with a working outbox: got %v, want nil", err)
	}
	if err := healthy.Healthy(); err != nil {
		t.Fatalf("Healthy with a working outbox: got %v, want nil", err)
	}

	broken := errors.New("fdatasync: input/output error")
	e := newEngine(t, core.Config{Outbox: stoppedOutbox{Memory: outbox.NewMemory(0), failure: broken}})
	if err := e.Healthy(); !errors.Is(err, broken) {
		t.Fatalf("Healthy: got %v, want the outbox's failure", err)
	}
	if err := e.Ready(); !errors.Is(err, broken) {
		t.Fatalf("Ready: got %v, want the outbox's failure", err)
	}
}

// stoppedReadModels are read models whose background commit has failed.
type stoppedReadModels struct {
	*readmodel.Memory
	failure error
}

func (m stoppedReadModels) Failure() error { return m.failure }

func TestHealthyReportsReadModelsThatStoppedCommitting(t *testing.T) {
	healthy := newEngine(t, core.Config{ReadModels: stoppedReadModels{Memory: readmodel.NewMemory()}})
	if err := healthy.Healthy(); err != nil {
		t.Fatalf("Healthy with working read models: got %v, want nil", err)
	}
	broken := errors.New("commit read models: input/output error")
	e := newEngine(t, core.Config{ReadModels: stoppedReadModels{Memory: readmodel.NewMemory(), failure: broken}})
	if err := e.Healthy(); !errors.Is(err, broken) {
		t.Fatalf("Healthy: got %v, want the read models' failure", err)
	}
}
