package eventstoretest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

var appendBehaviours = []behaviour{
	{"AppendAssignsContiguousSequencesFromOne", testAppendAssignsContiguousSequencesFromOne},
	{"AppendReturnsTheEventsAsStored", testAppendReturnsTheEventsAsStored},
	{"AppendSetsTheAppendTimeWhenTimeIsZero", testAppendSetsTheAppendTimeWhenTimeIsZero},
	{"AppendKeepsAGivenTime", testAppendKeepsAGivenTime},
	{"AppendSetsAnEmptyStreamToTheStream", testAppendSetsAnEmptyStreamToTheStream},
	{"AppendRejectsInvalidEventsAndStoresNothing", testAppendRejectsInvalidEventsAndStoresNothing},
	{"AppendChecksTheExpectedVersion", testAppendChecksTheExpectedVersion},
	{"ConflictCarriesTheActualVersion", testConflictCarriesTheActualVersion},
	{"AppendIsIdempotentByEventID", testAppendIsIdempotentByEventID},
	{"AppendStoresTheSameIDInOneBatchOnce", testAppendStoresTheSameIDInOneBatchOnce},
	{"AppendOfAPartlyDuplicateBatchAppendsOnlyTheNewEvents", testAppendOfAPartlyDuplicateBatchAppendsOnlyTheNewEvents},
	{"AppendOfAPartlyDuplicateBatchChecksTheExpectedVersion", testAppendOfAPartlyDuplicateBatchChecksTheExpectedVersion},
	{"AppendOfAStoredIDReportsTheStoredEvent", testAppendOfAStoredIDReportsTheStoredEvent},
	{"TheSameIDInAnotherStreamIsANewEvent", testTheSameIDInAnotherStreamIsANewEvent},
	{"AppendOfNoEventsStoresNothing", testAppendOfNoEventsStoresNothing},
	{"AppendHonoursTheContext", testAppendHonoursTheContext},
	{"StoredEventsCannotBeChangedByCallers", testStoredEventsCannotBeChangedByCallers},
}

func testAppendAssignsContiguousSequencesFromOne(t *testing.T, s eventstore.Store) {
	first := mustAppend(t, s, ordersStream, eventstore.NoStream, events("a", 3)...)
	checkSequences(t, "first append", first.Events, 1, 3)
	if first.Appended != 3 || first.LastSequence != 3 {
		t.Errorf("first append: got Appended %d LastSequence %d, want 3 3", first.Appended, first.LastSequence)
	}
	second := mustAppend(t, s, ordersStream, eventstore.Exactly(3), events("b", 2)...)
	checkSequences(t, "second append", second.Events, 4, 2)
	if second.Appended != 2 || second.LastSequence != 5 {
		t.Errorf("second append: got Appended %d LastSequence %d, want 2 5", second.Appended, second.LastSequence)
	}
	checkSequences(t, "read", mustRead(t, s, ordersStream, 0, 10), 1, 5)
}

var positionBehaviours = []behaviour{
	{"AppendAssignsIncreasingPositionsAcrossStreams", testAppendAssignsIncreasingPositionsAcrossStreams},
}

func testAppendAssignsIncreasingPositionsAcrossStreams(t *testing.T, s eventstore.Store) {
	// Arguments are evaluated left to right, so the appends happen in this order.
	got := slices.Concat(
		mustAppend(t, s, "a", eventstore.Any, event("a1")).Events,
		mustAppend(t, s, "b", eventstore.Any, event("b1")).Events,
		mustAppend(t, s, "a", eventstore.Any, event("a2"), event("a3")).Events,
		mustAppend(t, s, "b", eventstore.Any, event("b2")).Events,
	)
	if got[0].Position != 1 {
		t.Errorf("first position: got %d, want 1", got[0].Position)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Position <= got[i-1].Position {
			t.Errorf("event %q has position %d after %q with %d, want it greater", got[i].ID, got[i].Position, got[i-1].ID, got[i-1].Position)
		}
	}
	wantSeq := map[string]uint64{"a1": 1, "b1": 1, "a2": 2, "a3": 3, "b2": 2}
	for _, m := range got {
		if m.Sequence != wantSeq[m.ID] {
			t.Errorf("event %q: got sequence %d, want %d", m.ID, m.Sequence, wantSeq[m.ID])
		}
	}
	read := append(mustRead(t, s, "a", 0, 10), mustRead(t, s, "b", 0, 10)...)
	positions := map[string]uint64{}
	for _, m := range got {
		positions[m.ID] = m.Position
	}
	for _, m := range read {
		if m.Position != positions[m.ID] {
			t.Errorf("read %q: got position %d, want %d as appended", m.ID, m.Position, positions[m.ID])
		}
	}
}

func testAppendReturnsTheEventsAsStored(t *testing.T, s eventstore.Store) {
	in := event("full")
	// The W3C trace context an event keeps, so that its handlings join
	// the ingest's trace, whichever store holds it.
	in.Headers = map[string]string{
		"ce-source": "/items", "ce-subject": "42",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "vendor=1",
	}
	in.CausationID = "cause-1"
	in.Value = map[string]any{"ignored": true}
	res := mustAppend(t, s, ordersStream, eventstore.Any, in)
	if len(res.Events) != 1 {
		t.Fatalf("Append: got %d events, want 1", len(res.Events))
	}
	checkContent(t, "appended", res.Events[0], in, ordersStream)
	if res.Events[0].Sequence != 1 || (res.Events[0].Position == 0) == positioned(s) || res.Events[0].Time.IsZero() {
		t.Errorf("appended: got sequence %d position %d time %s, want 1, non-zero where the store keeps positions (else 0), non-zero",
			res.Events[0].Sequence, res.Events[0].Position, res.Events[0].Time)
	}
	read := mustRead(t, s, ordersStream, 0, 10)
	if len(read) != 1 {
		t.Fatalf("Read: got %d events, want 1", len(read))
	}
	checkStored(t, "read", read[0], res.Events[0])
}

func testAppendSetsTheAppendTimeWhenTimeIsZero(t *testing.T, s eventstore.Store) {
	// A durable backend may keep microseconds only: allow that much slack.
	before := time.Now().Add(-time.Millisecond)
	res := mustAppend(t, s, ordersStream, eventstore.Any, event("a"), event("b"))
	after := time.Now().Add(time.Millisecond)
	for _, m := range append(res.Events, mustRead(t, s, ordersStream, 0, 10)...) {
		if m.Time.Before(before) || m.Time.After(after) {
			t.Errorf("event %q: got time %s, want between %s and %s", m.ID, m.Time, before, after)
		}
		if m.Time.Location() != time.UTC {
			t.Errorf("event %q: got time zone %s, want UTC", m.ID, m.Time.Location())
		}
	}
}

func testAppendKeepsAGivenTime(t *testing.T, s eventstore.Store) {
	given := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.FixedZone("CET", 3600))
	in := event("a")
	in.Time = given
	res := mustAppend(t, s, ordersStream, eventstore.Any, in)
	read := mustRead(t, s, ordersStream, 0, 10)
	for what, m := range map[string]engine.Message{"appended": res.Events[0], "read": read[0]} {
		if !m.Time.Equal(given) {
			t.Errorf("%s: got time %s, want %s", what, m.Time, given)
		}
	}
}

func testAppendSetsAnEmptyStreamToTheStream(t *testing.T, s eventstore.Store) {
	named := event("named")
	named.Stream = ordersStream
	res := mustAppend(t, s, ordersStream, eventstore.Any, event("unnamed"), named)
	for _, m := range append(res.Events, mustRead(t, s, ordersStream, 0, 10)...) {
		if m.Stream != ordersStream {
			t.Errorf("event %q: got stream %q, want %q", m.ID, m.Stream, ordersStream)
		}
	}
}

func testAppendRejectsInvalidEventsAndStoresNothing(t *testing.T, s eventstore.Store) {
	noID := event("")
	otherStream := event("b")
	otherStream.Stream = paymentsStream
	ancient := event("c")
	ancient.Time = time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		stream   string
		expected eventstore.ExpectedVersion
		events   []engine.Message
		// wantInMessage are parts the error must name.
		wantInMessage []string
	}{
		{"EmptyStreamName", "", eventstore.Any, []engine.Message{event("a")}, []string{"stream"}},
		{"ExpectedVersionBelowAny", ordersStream, eventstore.Any - 1, []engine.Message{event("a")}, []string{"-2"}},
		{"EmptyID", ordersStream, eventstore.Any, []engine.Message{event("a"), noID}, []string{"events[1]", "id"}},
		{"AnotherStream", ordersStream, eventstore.Any, []engine.Message{event("a"), otherStream}, []string{"events[1]", `"b"`, `"payments"`}},
		{"TimeOutsideTheStorableRange", ordersStream, eventstore.Any, []engine.Message{ancient}, []string{"events[0]", `"c"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Append(testContext(t), tt.stream, tt.expected, tt.events)
			if !errors.Is(err, eventstore.ErrInvalidAppend) {
				t.Fatalf("Append: got error %v, want one wrapping ErrInvalidAppend", err)
			}
			for _, part := range tt.wantInMessage {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("Append: got error %q, want it to name %s", err, part)
				}
			}
			if v := mustVersion(t, s, tt.stream); v != 0 {
				t.Errorf("Version after the rejected append: got %d, want 0", v)
			}
		})
	}
}

func testAppendChecksTheExpectedVersion(t *testing.T, s eventstore.Store) {
	tests := []struct {
		name     string
		stored   int
		expected eventstore.ExpectedVersion
		wantErr  bool
	}{
		{"AnyOnAnEmptyStream", 0, eventstore.Any, false},
		{"AnyOnAStreamWithEvents", 2, eventstore.Any, false},
		{"NoStreamOnAnEmptyStream", 0, eventstore.NoStream, false},
		{"NoStreamOnAStreamWithEvents", 2, eventstore.NoStream, true},
		{"ExactlyTheVersion", 2, eventstore.Exactly(2), false},
		{"ExactlyAnOlderVersion", 2, eventstore.Exactly(1), true},
		{"ExactlyANewerVersion", 2, eventstore.Exactly(3), true},
		{"ExactlyOnAnEmptyStream", 0, eventstore.Exactly(1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := "orders-" + tt.name
			if tt.stored > 0 {
				mustAppend(t, s, stream, eventstore.Any, events("stored", tt.stored)...)
			}
			_, err := s.Append(testContext(t), stream, tt.expected, []engine.Message{event("new")})
			if gotErr := errors.Is(err, eventstore.ErrWrongExpectedVersion); gotErr != tt.wantErr || (err != nil && !gotErr) {
				t.Fatalf("Append with expected %d on %d events: got error %v, want conflict %t", tt.expected, tt.stored, err, tt.wantErr)
			}
			want := uint64(tt.stored)
			if !tt.wantErr {
				want++
			}
			if v := mustVersion(t, s, stream); v != want {
				t.Errorf("Version: got %d, want %d", v, want)
			}
		})
	}
}

func testConflictCarriesTheActualVersion(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, events("a", 3)...)
	_, err := s.Append(testContext(t), ordersStream, eventstore.Exactly(1), []engine.Message{event("b")})
	var conflict *eventstore.ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("Append: got error %v, want a *ConflictError", err)
	}
	if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Errorf("Append: got error %v, want one wrapping ErrWrongExpectedVersion", err)
	}
	want := eventstore.ConflictError{Stream: ordersStream, Expected: eventstore.Exactly(1), Actual: 3}
	if *conflict != want {
		t.Errorf("conflict: got %+v, want %+v", *conflict, want)
	}
}

func testAppendIsIdempotentByEventID(t *testing.T, s eventstore.Store) {
	batch := events("a", 2)
	first := mustAppend(t, s, ordersStream, eventstore.NoStream, batch...)
	// A retry with the same, now stale, expected version succeeds.
	retry := mustAppend(t, s, ordersStream, eventstore.NoStream, batch...)
	if retry.Appended != 0 || retry.LastSequence != 2 {
		t.Errorf("retry: got Appended %d LastSequence %d, want 0 2", retry.Appended, retry.LastSequence)
	}
	if len(retry.Events) != len(first.Events) {
		t.Fatalf("retry: got %d events, want %d", len(retry.Events), len(first.Events))
	}
	for i := range first.Events {
		checkStored(t, "retried event", retry.Events[i], first.Events[i])
	}
	if v := mustVersion(t, s, ordersStream); v != 2 {
		t.Errorf("Version: got %d, want 2", v)
	}
}

func testAppendStoresTheSameIDInOneBatchOnce(t *testing.T, s eventstore.Store) {
	a, b, again := event("a"), event("b"), event("a")
	again.Payload = []byte(`"second copy"`)
	res := mustAppend(t, s, ordersStream, eventstore.NoStream, a, b, again)
	if res.Appended != 2 || res.LastSequence != 2 {
		t.Errorf("Append: got Appended %d LastSequence %d, want 2 2", res.Appended, res.LastSequence)
	}
	if len(res.Events) != 3 {
		t.Fatalf("Append: got %d events, want 3 (one per input)", len(res.Events))
	}
	checkStored(t, "repeated ID", res.Events[2], res.Events[0])
	checkSequences(t, "read", mustRead(t, s, ordersStream, 0, 10), 1, 2)
}

func testAppendOfAPartlyDuplicateBatchAppendsOnlyTheNewEvents(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, ordersStream, eventstore.Any, event("a")).Events[0]
	res := mustAppend(t, s, ordersStream, eventstore.Exactly(1), event("a"), event("b"))
	if res.Appended != 1 || res.LastSequence != 2 {
		t.Errorf("Append: got Appended %d LastSequence %d, want 1 2", res.Appended, res.LastSequence)
	}
	checkStored(t, "duplicate", res.Events[0], stored)
	if res.Events[1].ID != "b" || res.Events[1].Sequence != 2 {
		t.Errorf("new event: got id %q sequence %d, want %q 2", res.Events[1].ID, res.Events[1].Sequence, "b")
	}
}

func testAppendOfAPartlyDuplicateBatchChecksTheExpectedVersion(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, event("a"), event("b"))
	_, err := s.Append(testContext(t), ordersStream, eventstore.Exactly(1), []engine.Message{event("b"), event("c")})
	var conflict *eventstore.ConflictError
	if !errors.As(err, &conflict) || conflict.Actual != 2 {
		t.Fatalf("Append of b (stored) and c (new) expecting 1: got error %v, want a conflict with actual 2", err)
	}
	if v := mustVersion(t, s, ordersStream); v != 2 {
		t.Errorf("Version: got %d, want 2", v)
	}
}

func testAppendOfAStoredIDReportsTheStoredEvent(t *testing.T, s eventstore.Store) {
	stored := mustAppend(t, s, ordersStream, eventstore.Any, event("a")).Events[0]
	changed := event("a")
	changed.Payload = []byte(`"changed"`)
	changed.Name = "ItemChanged"
	res := mustAppend(t, s, ordersStream, eventstore.Any, changed)
	checkStored(t, "re-appended ID", res.Events[0], stored)
	checkStored(t, "read", mustRead(t, s, ordersStream, 0, 10)[0], stored)
}

func testTheSameIDInAnotherStreamIsANewEvent(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, event("a"))
	res := mustAppend(t, s, paymentsStream, eventstore.NoStream, event("a"))
	if res.Appended != 1 || res.Events[0].Stream != paymentsStream {
		t.Errorf("Append to another stream: got Appended %d stream %q, want 1 %q", res.Appended, res.Events[0].Stream, paymentsStream)
	}
}

func testAppendOfNoEventsStoresNothing(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, event("a"))
	res := mustAppend(t, s, ordersStream, eventstore.Any)
	if res.Appended != 0 || len(res.Events) != 0 || res.LastSequence != 1 {
		t.Errorf("empty Append: got Appended %d, %d events, LastSequence %d, want 0, 0, 1", res.Appended, len(res.Events), res.LastSequence)
	}
}

func testAppendHonoursTheContext(t *testing.T, s eventstore.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Append(ctx, ordersStream, eventstore.Any, []engine.Message{event("a")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context: got error %v, want context.Canceled", err)
	}
	if v := mustVersion(t, s, ordersStream); v != 0 {
		t.Errorf("Version: got %d, want 0", v)
	}
}

func testStoredEventsCannotBeChangedByCallers(t *testing.T, s eventstore.Store) {
	in := event("a")
	in.Headers = map[string]string{"k": "v"}
	want := in.Clone()
	res := mustAppend(t, s, ordersStream, eventstore.Any, in)
	scribble := func(m engine.Message) {
		for i := range m.Payload {
			m.Payload[i] = 'X'
		}
		m.Headers["k"] = "changed"
		m.Headers["extra"] = "added"
	}
	scribble(in)
	scribble(res.Events[0])
	scribble(mustRead(t, s, ordersStream, 0, 10)[0])
	checkContent(t, "read after callers changed their copies", mustRead(t, s, ordersStream, 0, 10)[0], want, ordersStream)
}
