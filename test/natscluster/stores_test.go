package natscluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natsstoretest"
)

// Replicas of the manager start together (a Deployment of three): each
// opens the NATS store, and so creates its streams, at the same moment as
// the others. Two JetStream requests creating one replicated stream at
// once sometimes both go unanswered (nats-server 2.15), so opening must
// not wait for an answer for as long as its context allows: a manager
// gives up after 30 s.
func TestTwoStoresOpeningTogetherOnAClusterBothOpenWithinSeconds(t *testing.T) {
	c := startCluster(t)
	const trials = 6
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
				// for seconds is lost. 10 s, not less: on a loaded host
				// (two test suites at once) the stream's first reads wait
				// for its leader for some seconds.
				openCtx, cancelOpen := context.WithTimeout(ctx, 10*time.Second)
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

// Two replicas append to one stream on a cluster of three.
func TestTwoStoresAppendingIfMatchBesideUnkeyedAppendsStoreEachKeyVersionOnce(t *testing.T) {
	c := startCluster(t)
	natsstoretest.TwoReplicasAppendIfMatchBesideUnkeyedAppends(t, natsstore.Options{URL: c.URLs(), Replicas: Size})
}
