package natscluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore/natstest"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = "../.."

func startCluster(t *testing.T) *Cluster {
	t.Helper()
	bin, err := Binary(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	return Start(t, Options{Binary: bin})
}

// createStream creates cfg's stream on c as the manager does
// (natsstore.Conn.CreateStream): a create request sent while the cluster
// settles can go unanswered, and is sent again rather than waited on.
func createStream(ctx context.Context, t *testing.T, c *Cluster, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	conn, err := natsstore.Connect(ctx, natsstore.Options{URL: c.URLs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	stream, err := conn.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// publish stores orders.<i> for i in [from, to), each with a message id so
// that a retry after a lost acknowledgement stores it once.
func publish(ctx context.Context, t *testing.T, js jetstream.JetStream, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		var err error
		for ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = js.Publish(pctx, fmt.Sprintf("orders.%d", i), []byte("order"), jetstream.WithMsgID(fmt.Sprint(i)))
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("publish orders.%d: %v", i, err)
		}
	}
}

// localStreamState is what node i's own replica of stream holds, from its
// monitoring endpoint (/jsz), not from the stream's leader.
func localStreamState(t *testing.T, c *Cluster, i int, stream string) (msgs, lastSeq uint64) {
	t.Helper()
	resp, err := http.Get(c.MonitorURL(i) + "/jsz?accounts=true&streams=true")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name  string `json:"name"`
				State struct {
					Msgs    uint64 `json:"messages"`
					LastSeq uint64 `json:"last_seq"`
				} `json:"state"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		t.Fatal(err)
	}
	for _, a := range jsz.Accounts {
		for _, s := range a.Streams {
			if s.Name == stream {
				return s.State.Msgs, s.State.LastSeq
			}
		}
	}
	t.Fatalf("node %s holds no replica of %s", c.ServerName(i), stream)
	return 0, 0
}

func TestAKilledNodeCatchesUpOnRestartWhileTheOthersKeepAccepting(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	js := natstest.JetStream(t, c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	stream := createStream(ctx, t, c, jetstream.StreamConfig{
		Name: "ORDERS", Subjects: []string{"orders.>"}, Replicas: Size, Storage: jetstream.FileStorage,
	})
	publish(ctx, t, js, 0, 10)

	// A follower, not the stream's leader: the stream goes on without an
	// election, which keeps the test short.
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := -1
	for i := range Size {
		if c.ServerName(i) != info.Cluster.Leader {
			victim = i
			break
		}
	}
	c.Kill(victim)
	addr := strings.TrimPrefix(c.URL(victim), "nats://")
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = conn.Close()
		t.Fatalf("node %s still accepts connections on %s after Kill", c.ServerName(victim), addr)
	}

	publish(ctx, t, js, 10, 20)
	c.Restart(victim)

	if msgs, last := localStreamState(t, c, victim, "ORDERS"); msgs != 20 || last != 20 {
		t.Fatalf("node %s after its restart holds %d messages up to sequence %d; want all 20, up to 20",
			c.ServerName(victim), msgs, last)
	}
	info, err = stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 20 {
		t.Fatalf("the stream holds %d messages, want 20 (each published once)", info.State.Msgs)
	}
}

func TestEveryNodeRunsTheConfigurationItWasGiven(t *testing.T) {
	bin, err := Binary(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	c := Start(t, Options{Binary: bin, SyncAlways: true})
	for i := range Size {
		varz := readVarz(t, c.MonitorURL(i))
		if varz.Name != c.ServerName(i) || varz.Cluster.Name != "natscluster" || !varz.JetStream.Config.SyncAlways ||
			!strings.HasSuffix(varz.JetStream.Config.StoreDir, "/"+c.ServerName(i)+"/jetstream") {
			t.Errorf("node %d's /varz = %+v; want server %s in cluster natscluster, syncing always, its store in its own directory",
				i, varz, c.ServerName(i))
		}
	}
}

// varz is what the tests read of a node's /varz.
type varz struct {
	Name      string `json:"server_name"`
	Version   string `json:"version"`
	JetStream struct {
		Config struct {
			SyncAlways bool   `json:"sync_always"`
			StoreDir   string `json:"store_dir"`
		} `json:"config"`
	} `json:"jetstream"`
	Cluster struct {
		Name string `json:"name"`
	} `json:"cluster"`
}

// readVarz reads the /varz of the node whose monitoring endpoint is at url.
func readVarz(t *testing.T, url string) varz {
	t.Helper()
	resp, err := http.Get(url + "/varz")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var v varz
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
