package sse_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/test/sse"
)

func TestReadGivesEventsAndCommentsInOrder(t *testing.T) {
	body := ": keep-alive\n\nid: 1\nevent: ItemCreated\ndata: {\"id\":\"a\"}\n\nid: 2\ndata: x\n\n: bye\n\n"
	var got []sse.Message
	if err := sse.Read(strings.NewReader(body), func(m sse.Message) bool { got = append(got, m); return true }); err != nil {
		t.Fatal(err)
	}
	want := []sse.Message{
		{Comment: "keep-alive"},
		{ID: "1", Event: "ItemCreated", Data: `{"id":"a"}`},
		{ID: "2", Data: "x"},
		{Comment: "bye"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	n := 0
	_ = sse.Read(strings.NewReader(body), func(sse.Message) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("fn returning false read on: %d calls, want 2", n)
	}
}
