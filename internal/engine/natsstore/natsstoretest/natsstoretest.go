// Package natsstoretest holds checks of the NATS event store that run
// both on an embedded server and on a cluster of nats-server processes.
package natsstoretest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// TwoReplicasAppendIfMatchBesideUnkeyedAppends opens two event stores with
// opts (two manager replicas) that append to one stream: If-Match appends
// to one key, and unkeyed appends beside them, as clients post. Each
// version of the key is acknowledged to one append at most and stored
// once, and an append refused or failed is not stored.
func TwoReplicasAppendIfMatchBesideUnkeyedAppends(t *testing.T, opts natsstore.Options) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stores := make([]*natsstore.EventStore, 0, 2)
	for range 2 {
		conn, err := natsstore.Connect(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Close)
		s, err := natsstore.NewEventStore(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	event := func(id, key string) []engine.Message {
		return []engine.Message{{ID: id, Name: "Happened", Key: key, Payload: []byte(`{}`)}}
	}
	if _, err := stores[0].AppendAccepted(ctx, "orders", event("first", ""), nil, versions.Any); err != nil {
		t.Fatal(err)
	}

	var (
		mu       sync.Mutex
		acked    = map[uint64][]string{} // version: the appends acknowledged at it
		notAcked = map[string]error{}    // append: why it was not
		writers  sync.WaitGroup
		unkeyed  sync.WaitGroup
	)
	stop := make(chan struct{})
	for si, s := range stores {
		for w := range 4 {
			writers.Go(func() {
				for i := range 60 {
					v, err := s.KeyVersion(ctx, "orders", "k")
					if err != nil {
						t.Error(err)
						return
					}
					id := fmt.Sprintf("store%d-writer%d-%d", si, w, i)
					res, err := s.AppendAccepted(ctx, "orders", event(id, "k"), nil, versions.Exactly(v))
					mu.Lock()
					if err != nil {
						notAcked[id] = err
					} else {
						acked[res[0].Version] = append(acked[res[0].Version], id)
					}
					mu.Unlock()
				}
			})
		}
		for u := range 2 {
			unkeyed.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := s.AppendAccepted(ctx, "orders", event(fmt.Sprintf("store%d-unkeyed%d-%d", si, u, i), ""), nil, versions.Any); err != nil {
						t.Errorf("an unkeyed append: %v", err)
						return
					}
				}
			})
		}
	}
	writers.Wait()
	close(stop)
	unkeyed.Wait()

	for v, ids := range acked {
		if len(ids) > 1 {
			t.Errorf("version %d of the key acknowledged to %d appends: %v", v, len(ids), ids)
		}
	}
	for id, err := range notAcked {
		if !errors.Is(err, versions.ErrVersionConflict) {
			t.Errorf("append %s: %v", id, err)
		}
	}
	stored, err := stores[0].ReadKey(ctx, "orders", "k", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	gapless := true
	for i, m := range stored {
		if m.Version != uint64(i+1) && gapless {
			t.Errorf("the key's event %d (%s) is stored at version %d", i+1, m.ID, m.Version)
			gapless = false
		}
		if err, ok := notAcked[m.ID]; ok {
			t.Errorf("append %s is stored at version %d, and was answered %v", m.ID, m.Version, err)
		}
	}
	if len(stored) != len(acked) {
		t.Errorf("%d events of the key stored, %d versions acknowledged", len(stored), len(acked))
	}
}
