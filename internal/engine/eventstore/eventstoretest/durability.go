package eventstoretest

import (
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// reopenBehaviour is a subtest that closes its store and opens its storage
// again.
type reopenBehaviour struct {
	name  string
	needs Features
	run   func(t *testing.T, st *storage)
}

var reopenBehaviours = []reopenBehaviour{
	{"EventsSurviveReopening", Features{Durable: true}, testEventsSurviveReopening},
	{"IdempotencyRecordsSurviveReopening", Features{Durable: true}, testIdempotencyRecordsSurviveReopening},
	{"CompactionSurvivesReopening", Features{Compaction: true, Durable: true}, testCompactionSurvivesReopening},
	{"KeysAndTheirVersionsSurviveReopening", Features{Durable: true}, testKeysAndTheirVersionsSurviveReopening},
	{"VersionsOfCompactedKeysSurviveReopening", Features{Compaction: true, Durable: true}, testVersionsOfCompactedKeysSurviveReopening},
}

func testEventsSurviveReopening(t *testing.T, st *storage) {
	s := st.open(t)
	evs := events("o", 3)
	evs[1].Headers = map[string]string{"ce-source": "/orders"}
	orders := mustAppend(t, s, ordersStream, eventstore.NoStream, evs...).Events
	payments := mustAppend(t, s, paymentsStream, eventstore.NoStream, events("p", 2)...).Events

	s = st.reopen(t, s)
	for stream, stored := range map[string][]engine.Message{ordersStream: orders, paymentsStream: payments} {
		got := mustRead(t, s, stream, 0, 10)
		checkSequences(t, "Read of "+stream+" after reopening", got, 1, len(stored))
		for i := range got {
			checkStored(t, "Read of "+stream+" after reopening", got[i], stored[i])
		}
	}
	if v := mustVersion(t, s, ordersStream); v != 3 {
		t.Errorf("Version after reopening: got %d, want 3", v)
	}
	sub := subscribe(t, s, ordersStream, 0)
	for _, want := range orders {
		checkStored(t, "subscription after reopening", mustNext(t, sub), want)
	}

	next := mustAppend(t, s, ordersStream, eventstore.Exactly(3), event("o-4")).Events[0]
	if next.Sequence != 4 {
		t.Errorf("sequence of the append after reopening: got %d, want 4", next.Sequence)
	}
	if last := payments[len(payments)-1].Position; positioned(s) && next.Position <= last {
		t.Errorf("position of the append after reopening: got %d, want more than %d, the last before", next.Position, last)
	}
	checkStored(t, "live event after reopening", mustNext(t, sub), next)
}

func testIdempotencyRecordsSurviveReopening(t *testing.T, st *storage) {
	s := st.open(t)
	first := mustAppend(t, s, ordersStream, eventstore.NoStream, event("a"), event("b")).Events

	s = st.reopen(t, s)
	// The retry carries a stale expected version and changed content: it
	// stores nothing and reports what the first append stored.
	changed := event("a")
	changed.Payload = []byte(`"changed"`)
	retry := mustAppend(t, s, ordersStream, eventstore.NoStream, changed, event("b"))
	if retry.Appended != 0 || retry.LastSequence != 2 {
		t.Errorf("retry after reopening: got Appended %d LastSequence %d, want 0 2", retry.Appended, retry.LastSequence)
	}
	for i := range first {
		checkStored(t, "retried event", retry.Events[i], first[i])
	}

	partly := mustAppend(t, s, ordersStream, eventstore.Exactly(2), event("b"), event("c"))
	if partly.Appended != 1 || partly.LastSequence != 3 || partly.Events[1].Sequence != 3 {
		t.Errorf("partly duplicate append after reopening: got Appended %d LastSequence %d sequence of c %d, want 1 3 3",
			partly.Appended, partly.LastSequence, partly.Events[1].Sequence)
	}
	checkSequences(t, "stored events", mustRead(t, s, ordersStream, 0, 10), 1, 3)
}

func testCompactionSurvivesReopening(t *testing.T, st *storage) {
	s := st.open(t)
	stored := mustAppend(t, s, ordersStream, eventstore.Any, events("a", 10)...).Events
	mustCompact(t, s, ordersStream, 7, 6)

	s = st.reopen(t, s)
	checkRetained(t, s, ordersStream, stored, 7)
	if v := mustVersion(t, s, ordersStream); v != 10 {
		t.Fatalf("Version after reopening: got %d, want 10", v)
	}
	// A compacted id is forgotten, a retained one still deduplicates.
	res := mustAppend(t, s, ordersStream, eventstore.Any, event("a-1"), stored[9])
	if res.Appended != 1 || res.Events[0].Sequence != 11 || res.Events[1].Sequence != 10 {
		t.Fatalf("append of a compacted id and a retained one after reopening: got %d appended at %d and %d, "+
			"want 1 at 11 and the stored 10", res.Appended, res.Events[0].Sequence, res.Events[1].Sequence)
	}
}

func testKeysAndTheirVersionsSurviveReopening(t *testing.T, st *storage) {
	s := st.open(t)
	stored := mustAppend(t, s, ordersStream, eventstore.Any, keyed("a1", "a", 0), keyed("b1", "b", 0), keyed("a2", "a", 0)).Events

	s = st.reopen(t, s)
	checkKeyHolds(t, s, ordersStream, "a", []engine.Message{stored[0], stored[2]}, 2)
	checkKeyHolds(t, s, ordersStream, "b", stored[1:2], 1)
	got, ok := mustLookup(t, s, ordersStream, "a2")
	if !ok {
		t.Fatal("Lookup(a2) after reopening: not found")
	}
	checkStored(t, "Lookup(a2) after reopening", got, stored[2])
	// A retry keeps its version; new events go on from the kept versions.
	res := mustAppend(t, s, ordersStream, eventstore.Any, keyed("a2", "a", 0), keyed("a3", "a", 3), keyed("b2", "b", 0))
	checkStored(t, "retried a2 after reopening", res.Events[0], stored[2])
	checkVersions(t, "a3 after reopening", res.Events[1:2], "a", 3, 1)
	checkVersions(t, "b2 after reopening", res.Events[2:], "b", 2, 1)
}

func testVersionsOfCompactedKeysSurviveReopening(t *testing.T, st *storage) {
	s := st.open(t)
	mustAppend(t, s, ordersStream, eventstore.Any, keyed("a1", "a", 0), keyed("a2", "a", 0), keyed("b1", "b", 0))
	mustCompact(t, s, ordersStream, 3, 2) // every event of a

	s = st.reopen(t, s)
	checkKeyHolds(t, s, ordersStream, "a", nil, 2)
	if _, ok := mustLookup(t, s, ordersStream, "a1"); ok {
		t.Error("Lookup of compacted a1 after reopening: found, want nothing")
	}
	next := mustAppend(t, s, ordersStream, eventstore.Any, keyed("a3", "a", 0)).Events
	checkVersions(t, "a3 after compaction and reopening", next, "a", 3, 1)
	checkKeyHolds(t, s, ordersStream, "a", next, 3)
}
