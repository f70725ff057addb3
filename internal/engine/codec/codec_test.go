package codec_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
)

func TestEncodedMessagesDecodeToTheSameMessage(t *testing.T) {
	cases := map[string]engine.Message{
		"every field": {
			ID: "e1", Name: "ItemCreated", Stream: "shop/items", Sequence: 7, Position: 1 << 40,
			Key: "order-42", Version: 3,
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
			got, err := codec.DecodeMessage(codec.AppendMessage(nil, &want))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

// A layout-1 record (written before events had keys) is the layout-2 one
// without the key and version fields.
func TestRecordsWrittenBeforeKeysExistedStillDecode(t *testing.T) {
	want := engine.Message{ID: "e1", Name: "N", Stream: "s", Sequence: 2, Position: 9, Payload: []byte("{}")}
	v2 := codec.AppendMessage(nil, &want)
	// Layout 2 puts the empty key (one byte, 0) and version (0) after the
	// position; the position is the last uvarint before them.
	keyAt := 1 + 3*2 + len("e1") + len("N") + len("s") + 1 + 1
	v1 := append([]byte{1}, v2[1:keyAt]...)
	v1 = append(v1, v2[keyAt+2:]...)
	got, err := codec.DecodeMessage(v1)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("layout 1: got %#v, %v; want %#v", got, err, want)
	}
	if id, err := codec.MessageID(v1); err != nil || string(id) != "e1" {
		t.Fatalf("MessageID of layout 1: %q, %v", id, err)
	}
}

func TestTruncatedOrForeignRecordsAreCorruptNotMisread(t *testing.T) {
	m := engine.Message{ID: "e1", Headers: map[string]string{"a": "b"}, Payload: []byte("{}")}
	full := codec.AppendMessage(nil, &m)
	for n := range len(full) {
		if _, err := codec.DecodeMessage(full[:n]); !errors.Is(err, codec.ErrCorrupt) {
			t.Fatalf("%d of %d bytes: got %v, want codec.ErrCorrupt", n, len(full), err)
		}
	}
	if _, err := codec.DecodeMessage(append(full, 0)); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("trailing byte: got %v, want codec.ErrCorrupt", err)
	}
	if _, err := codec.DecodeMessage([]byte{99}); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("unknown version: got %v, want codec.ErrCorrupt", err)
	}
}

func TestMessageIDReadsTheIDAloneAndRefusesForeignRecords(t *testing.T) {
	m := engine.Message{ID: "order-7", Name: "N", Payload: []byte("{}")}
	full := codec.AppendMessage(nil, &m)
	if id, err := codec.MessageID(full); err != nil || string(id) != m.ID {
		t.Fatalf("MessageID: got %q, %v; want %q, nil", id, err, m.ID)
	}
	for _, b := range [][]byte{nil, {99}, full[:3]} {
		if _, err := codec.MessageID(b); !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("MessageID(%x): got %v, want ErrCorrupt", b, err)
		}
	}
}

func TestReaderSliceSharesTheRecordAndBytesCopiesIt(t *testing.T) {
	rec := []byte{3, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', 'f'}
	r := codec.NewReader(rec)
	n := r.Uint32()
	shared := r.Slice(uint64(n))
	owned := r.Bytes(3)
	if err := r.End("the record"); err != nil || n != 3 || string(shared) != "abc" || string(owned) != "def" {
		t.Fatalf("read %d, %q, %q, %v; want 3, abc, def, nil", n, shared, owned, err)
	}
	rec[4], rec[7] = 'x', 'y'
	if string(shared) != "xbc" || string(owned) != "def" {
		t.Fatalf("after the record changed: Slice %q, Bytes %q; want xbc (shared), def (copied)", shared, owned)
	}
	if s := r.Slice(1); s != nil || !errors.Is(r.Err(), codec.ErrCorrupt) {
		t.Fatalf("Slice past the end: got %q, %v; want nil, ErrCorrupt", s, r.Err())
	}
}

// FuzzDecodeMessage feeds arbitrary bytes: decoding never panics, and what
// decodes encodes back to a record that decodes the same, whose ID
// MessageID reads alone.
func FuzzDecodeMessage(f *testing.F) {
	m := engine.Message{ID: "e1", Name: "N", Headers: map[string]string{"a": "b"}, Payload: []byte("{}"), Time: time.Unix(5, 0)}
	f.Add(codec.AppendMessage(nil, &m))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := codec.DecodeMessage(b)
		if err != nil {
			return
		}
		again, err := codec.DecodeMessage(codec.AppendMessage(nil, &got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoding changed the message: %#v -> %#v (%v)", got, again, err)
		}
		if id, err := codec.MessageID(b); err != nil || string(id) != got.ID {
			t.Fatalf("MessageID of a record that decodes: got %q, %v; want %q, nil", id, err, got.ID)
		}
	})
}

func TestMessageKeyReadsTheKeyAndVersionAlone(t *testing.T) {
	m := engine.Message{ID: "e1", Name: "N", Stream: "s", Sequence: 300, Position: 1 << 40, Key: "order-42", Version: 7, Payload: []byte("{}")}
	b := codec.AppendMessage(nil, &m)
	if key, v, err := codec.MessageKey(b); err != nil || string(key) != "order-42" || v != 7 {
		t.Fatalf("MessageKey: got %q, %d, %v; want order-42, 7, nil", key, v, err)
	}
	unkeyed := engine.Message{ID: "e2"}
	if key, v, err := codec.MessageKey(codec.AppendMessage(nil, &unkeyed)); err != nil || len(key) != 0 || v != 0 {
		t.Fatalf("MessageKey of an unkeyed message: got %q, %d, %v; want empty, 0, nil", key, v, err)
	}
	// Every cut before the version's byte (7 takes one) is corrupt.
	versionEnd := strings.Index(string(b), "order-42") + len("order-42") + 1
	for n := range versionEnd {
		if _, _, err := codec.MessageKey(b[:n]); !errors.Is(err, codec.ErrCorrupt) {
			t.Fatalf("MessageKey of %d bytes: got %v, want codec.ErrCorrupt", n, err)
		}
	}
}
