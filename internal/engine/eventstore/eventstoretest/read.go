package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

var readBehaviours = []behaviour{
	{"ReadPagesThroughTheStreamInOrder", testReadPagesThroughTheStreamInOrder},
	{"ReadOfAnUnknownStreamIsEmpty", testReadOfAnUnknownStreamIsEmpty},
	{"ReadAfterTheLastSequenceIsEmpty", testReadAfterTheLastSequenceIsEmpty},
	{"ReadWithoutALimitReturnsEvents", testReadWithoutALimitReturnsEvents},
	{"ReadReturnsOnlyTheStreamsOwnEvents", testReadReturnsOnlyTheStreamsOwnEvents},
	{"ReadHonoursTheContext", testReadHonoursTheContext},
	{"VersionIsTheLastSequence", testVersionIsTheLastSequence},
}

func testReadPagesThroughTheStreamInOrder(t *testing.T, s eventstore.Store) {
	appended := mustAppend(t, s, ordersStream, eventstore.Any, events("a", 10)...).Events
	var after uint64
	for page := 0; ; page++ {
		got := mustRead(t, s, ordersStream, after, 3)
		want := min(3, 10-int(after))
		checkSequences(t, "page", got, after+1, want)
		for _, m := range got {
			checkStored(t, "read", m, appended[m.Sequence-1])
		}
		if len(got) == 0 {
			if page != 4 {
				t.Errorf("pages: got %d, want 4", page)
			}
			return
		}
		after = got[len(got)-1].Sequence
	}
}

func testReadOfAnUnknownStreamIsEmpty(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, event("a"))
	if got := mustRead(t, s, "unknown", 0, 10); len(got) != 0 {
		t.Errorf("Read of an unknown stream: got %d events, want 0", len(got))
	}
}

func testReadAfterTheLastSequenceIsEmpty(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, events("a", 2)...)
	for _, after := range []uint64{2, 3, 1 << 62} {
		if got := mustRead(t, s, ordersStream, after, 10); len(got) != 0 {
			t.Errorf("Read after %d of 2 events: got %d events, want 0", after, len(got))
		}
	}
}

func testReadWithoutALimitReturnsEvents(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, events("a", 5)...)
	for _, limit := range []int{0, -1} {
		checkSequences(t, "Read with a limit of zero or less", mustRead(t, s, ordersStream, 0, limit), 1, 5)
	}
}

func testReadReturnsOnlyTheStreamsOwnEvents(t *testing.T, s eventstore.Store) {
	for i := range 3 {
		mustAppend(t, s, ordersStream, eventstore.Any, events(fmt.Sprintf("order%d", i), 1)...)
		mustAppend(t, s, paymentsStream, eventstore.Any, events(fmt.Sprintf("payment%d", i), 1)...)
	}
	got := mustRead(t, s, ordersStream, 0, 10)
	checkSequences(t, "orders", got, 1, 3)
	for _, m := range got {
		if m.Stream != ordersStream {
			t.Errorf("event %q: got stream %q, want %q", m.ID, m.Stream, ordersStream)
		}
	}
}

func testReadHonoursTheContext(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, ordersStream, eventstore.Any, event("a"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Read(ctx, ordersStream, 0, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("Read with a cancelled context: got error %v, want context.Canceled", err)
	}
}

func testVersionIsTheLastSequence(t *testing.T, s eventstore.Store) {
	if v := mustVersion(t, s, ordersStream); v != 0 {
		t.Errorf("Version of an unknown stream: got %d, want 0", v)
	}
	mustAppend(t, s, ordersStream, eventstore.Any, events("a", 3)...)
	mustAppend(t, s, paymentsStream, eventstore.Any, events("b", 2)...)
	if v := mustVersion(t, s, ordersStream); v != 3 {
		t.Errorf("Version after 3 events: got %d, want 3", v)
	}
}
