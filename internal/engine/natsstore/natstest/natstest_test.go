package natstest_test

import (
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
)

func TestASharedServerTakesJetStreamPublishes(t *testing.T) {
	s := natstest.Shared(t)
	js := natstest.JetStream(t, s.ClientURL())
	// A name of its own: the shared server outlives one run of the test
	// (-count).
	name := natstest.Prefix(t.TempDir())
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}}); err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(t.Context(), name+".a", []byte("x"))
	if err != nil || ack.Sequence != 1 {
		t.Fatalf("publish: %v %v", ack, err)
	}
}

func TestAClusterOfThreeKeepsAReplicatedStreamWhenANodeStops(t *testing.T) {
	c := natstest.StartCluster(t, natstest.Options{})
	js := natstest.JetStream(t, c.URLs())
	// Created as the manager creates streams: a request sent while the
	// cluster settles can go unanswered, and is sent again.
	conn, err := natsstore.Connect(t.Context(), natsstore.Options{URL: c.URLs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if _, err := conn.CreateStream(t.Context(), jetstream.StreamConfig{Name: "R", Subjects: []string{"r.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "r.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	// If node 0 led the stream, the other two elect a leader first: a
	// publish meanwhile goes unanswered and is sent again.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := js.Publish(t.Context(), "r.a", []byte("y"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish with one node of three down: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	natstest.StopShared()
	os.Exit(code)
}
