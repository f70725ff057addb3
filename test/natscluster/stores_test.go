package natscluster

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

// Replicas of the manager start together (a Deployment of three): each
// opens the NATS store, and so creates its streams, at the same moment as
// the others. Two JetStream requests creating one replicated stream at
// once sometimes both go unanswered (nats-server 2.15), so opening must
// not wait for an answer for as long as its context allows: a manager
// gives up after 30 s.
func TestTwoStoresOpeningTogetherOnAClusterBothOpenWithinSeconds(t *testing.T) {
	c := startCluster(t)
	const trials = 12
	for trial := range trials {
		// A prefix of its own: every trial creates the store's streams.
		prefix := fmt.Sprintf("t%d", trial)
		var wg sync.WaitGroup
		for replica := range 2 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				start := time.Now()
				conn, err := natsstore.Connect(ctx, natsstore.Options{URL: c.URLs(), Replicas: Size, Prefix: prefix})
				if err != nil {
					t.Errorf("trial %d, replica %d: %v", trial, replica, err)
					return
				}
				defer conn.Close()
				// Creating a stream takes milliseconds: a request unanswered
				// for seconds is lost.
				openCtx, cancelOpen := context.WithTimeout(ctx, 5*time.Second)
				defer cancelOpen()
				store, err := natsstore.NewEventStore(openCtx, conn)
				if err != nil {
					t.Errorf("trial %d, replica %d: open the event store: %v after %s", trial, replica, err, time.Since(start).Round(time.Millisecond))
					return
				}
				_ = store.Close()
				readModels, err := natsstore.NewReadModels(openCtx, conn)
				if err != nil {
					t.Errorf("trial %d, replica %d: open the read models: %v after %s", trial, replica, err, time.Since(start).Round(time.Millisecond))
					return
				}
				_ = readModels.Close()
			})
		}
		wg.Wait()
		if t.Failed() {
			t.Fatalf("trial %d of %d: a replica could not open the store", trial+1, trials)
		}
	}
}

// Two replicas append to one stream: If-Match appends to one key, and
// unkeyed appends beside them, as the e2e clients post. Each version of the
// key is acknowledged to one append at most and stored once, and an append
// refused or failed is not stored.
func TestTwoStoresAppendingIfMatchBesideUnkeyedAppendsStoreEachKeyVersionOnce(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stores := make([]*natsstore.EventStore, 0, 2)
	for range 2 {
		conn, err := natsstore.Connect(ctx, natsstore.Options{URL: c.URLs(), Replicas: Size})
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
