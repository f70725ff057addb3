package diskstore

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

func TestEncodedMessagesDecodeToTheSameMessage(t *testing.T) {
	cases := map[string]engine.Message{
		"every field": {
			ID: "e1", Name: "ItemCreated", Stream: "shop/items", Sequence: 7, Position: 1 << 40,
			Time:    time.Date(2026, 11, 26, 1, 2, 3, 456789, time.UTC),
			Headers: map[string]string{"ce-source": "/shop", "": "empty key"}, CorrelationID: "c", CausationID: "k",
			ContentType: "application/avro", Payload: []byte{0, 1, 2, 255},
		},
		"zero message":     {},
		"empty payload":    {ID: "x", Payload: []byte{}},
		"time before 1970": {ID: "old", Time: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := decodeMessage(appendMessage(nil, &want))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

func TestTruncatedOrForeignRecordsAreCorruptNotMisread(t *testing.T) {
	m := engine.Message{ID: "e1", Headers: map[string]string{"a": "b"}, Payload: []byte("{}")}
	full := appendMessage(nil, &m)
	for n := range len(full) {
		if _, err := decodeMessage(full[:n]); !errors.Is(err, errCorrupt) {
			t.Fatalf("%d of %d bytes: got %v, want errCorrupt", n, len(full), err)
		}
	}
	if _, err := decodeMessage(append(full, 0)); !errors.Is(err, errCorrupt) {
		t.Fatalf("trailing byte: got %v, want errCorrupt", err)
	}
	if _, err := decodeMessage([]byte{99}); !errors.Is(err, errCorrupt) {
		t.Fatalf("unknown version: got %v, want errCorrupt", err)
	}
}

// FuzzDecodeMessage feeds arbitrary bytes: decoding never panics, and what
// decodes encodes back to a record that decodes the same.
func FuzzDecodeMessage(f *testing.F) {
	m := engine.Message{ID: "e1", Name: "N", Headers: map[string]string{"a": "b"}, Payload: []byte("{}"), Time: time.Unix(5, 0)}
	f.Add(appendMessage(nil, &m))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeMessage(b)
		if err != nil {
			return
		}
		again, err := decodeMessage(appendMessage(nil, &got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoding changed the message: %#v -> %#v (%v)", got, again, err)
		}
	})
}
