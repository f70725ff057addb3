package natscluster

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"

	"github.com/nats-io/nats.go/jetstream"
)

func TestALoneServerStoresJetStreamInItsOwnDirectoryOutsideAnyClusterAndServesItsProfile(t *testing.T) {
	bin, err := Binary(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	c := StartServer(t, Options{Binary: bin}, true)
	if c.Pid(0) <= 0 {
		t.Fatalf("Pid(0) = %d for a running server", c.Pid(0))
	}
	js := natstest.JetStream(t, c.URLs())
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "orders.1", []byte("order")); err != nil {
		t.Fatal(err)
	}

	varz := readVarz(t, c.MonitorURL(0))
	if varz.Cluster.Name != "" {
		t.Errorf("the server runs in cluster %q; want none", varz.Cluster.Name)
	}
	streamDir := filepath.Join(varz.JetStream.Config.StoreDir, "$G", "streams", "ORDERS")
	if _, err := os.Stat(streamDir); err != nil {
		t.Errorf("the file stream is not in the server's store directory: %v", err)
	}

	resp, err := http.Get(c.ProfileURL() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s/debug/pprof/: %s; want the server's pprof index", c.ProfileURL(), resp.Status)
	}

	c.Kill(0)
	if c.Pid(0) != 0 {
		t.Errorf("Pid(0) = %d after Kill; want 0", c.Pid(0))
	}
	c.Restart(0)
	info, err := func() (*jetstream.StreamInfo, error) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			s, err := js.Stream(t.Context(), "ORDERS")
			if err == nil {
				return s.Info(t.Context())
			}
			if time.Now().After(deadline) {
				return nil, err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("after a SIGKILL and a restart the stream holds %d messages; want the 1 acknowledged", info.State.Msgs)
	}
}
