package loadgen_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"
	"github.com/eventsourcing-dev/eventsourcing-operator/test/loadgen"
)

// publishToBare creates the stream BARE (subject "bare") on a server of the
// test's own, runs spec with its NATS pointed there, and returns the result
// and every payload the stream holds, sorted.
func publishToBare(t *testing.T, spec loadgen.Spec) (loadgen.Result, []string) {
	t.Helper()
	srv := natstest.Start(t, natstest.Options{})
	js := natstest.JetStream(t, srv.ClientURL())
	stream, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "BARE", Subjects: []string{"bare"}})
	if err != nil {
		t.Fatal(err)
	}
	spec.NATS.URL = srv.ClientURL()
	res := loadgen.Generate(spec)
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	payloads := storedPayloads(t, stream)
	slices.Sort(payloads)
	return res, payloads
}

// storedPayloads is every payload stream holds, in sequence order.
func storedPayloads(t *testing.T, stream jetstream.Stream) []string {
	t.Helper()
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var payloads []string
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, string(m.Data))
	}
	return payloads
}

func TestNATSPublishStoresEachGeneratedEventOnce(t *testing.T) {
	res, got := publishToBare(t, loadgen.Spec{Clients: 8, N: 50, NATS: &loadgen.NATSPublish{Subject: "bare"}})
	want := make([]string, 50)
	for i := range want {
		want[i] = fmt.Sprintf(`{"foo":"load","n":%d}`, i)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stored %d payloads %v; want each of the 50 generated events once", len(got), got)
	}
	if res.Accepted != 50 {
		t.Errorf("Accepted = %d; want the 50 acknowledged publishes", res.Accepted)
	}
}

func TestAsyncNATSPublishStoresTheBodysLinesOncePerBatch(t *testing.T) {
	body := "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"
	res, got := publishToBare(t, loadgen.Spec{Clients: 4, N: 10, Body: []byte(body), NATS: &loadgen.NATSPublish{Subject: "bare", Async: true}})
	want := make([]string, 0, 30)
	for range 10 {
		want = append(want, strings.Split(strings.TrimSpace(body), "\n")...)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stored %d payloads %v; want the body's 3 lines from each of 10 batches", len(got), got)
	}
	if res.Accepted != 10 {
		t.Errorf("Accepted = %d; want the 10 batches, each counted once", res.Accepted)
	}
}
