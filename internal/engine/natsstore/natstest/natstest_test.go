package natstest_test

import (
	"os"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
)

func TestASharedServerTakesJetStreamPublishes(t *testing.T) {
	s := natstest.Shared(t)
	js := natstest.JetStream(t, s.ClientURL())
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(t.Context(), "t.a", []byte("x"))
	if err != nil || ack.Sequence != 1 {
		t.Fatalf("publish: %v %v", ack, err)
	}
}

func TestAClusterOfThreeKeepsAReplicatedStreamWhenANodeStops(t *testing.T) {
	c := natstest.StartCluster(t, natstest.Options{})
	js := natstest.JetStream(t, c.URLs())
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "R", Subjects: []string{"r.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "r.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	if _, err := js.Publish(t.Context(), "r.a", []byte("y")); err != nil {
		t.Fatalf("publish with one node of three down: %v", err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	natstest.StopShared()
	os.Exit(code)
}
