// Package natstest runs NATS servers with JetStream inside a test process:
// one shared single-node server per test binary, or a cluster of three on
// loopback. The servers are github.com/nats-io/nats-server/v2 used as a
// library, so tests need no binary and no network beyond loopback.
package natstest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options says how a test server stores what JetStream holds.
type Options struct {
	// Dir keeps JetStream's files; a temporary directory when empty.
	Dir string
	// SyncAlways makes the server fsync every write before acknowledging it
	// (JetStream's sync_interval: always). The default is the server's own:
	// written at once, synced every two minutes.
	SyncAlways bool
}

// Start runs a single-node server with JetStream on a free loopback port
// and stops it when the test ends.
func Start(t testing.TB, o Options) *server.Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := start(o, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// StartAt runs a single-node server as Start does, on the port of url (a
// server that stopped, started again where its clients reconnect).
func StartAt(t testing.TB, o Options, url string) *server.Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	s, err := startOn(o, "", port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func start(o Options, name string) (*server.Server, error) {
	return startOn(o, name, server.RANDOM_PORT)
}

func startOn(o Options, name string, port int) (*server.Server, error) {
	dir := o.Dir
	opts := &server.Options{
		ServerName: name,
		Host:       loopback,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
		SyncAlways: o.SyncAlways,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natstest: new server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("natstest: server on %s not ready after 10s", dir)
	}
	return s, nil
}

// loopback is where every test server listens.
const loopback = "127.0.0.1"

var (
	shared     *server.Server
	sharedErr  error
	sharedOnce sync.Once
	sharedDir  string
)

// Shared returns one server for the whole test binary, started on first use
// and left to end with the process: conformance suites open many stores,
// each under a prefix of its own (Prefix), instead of a server each.
func Shared(t testing.TB) *server.Server {
	t.Helper()
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "natstest-")
		if sharedErr == nil {
			shared, sharedErr = start(Options{Dir: sharedDir}, "")
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// StopShared stops the shared server, if one was started, and removes its
// files; a package's TestMain calls it after m.Run.
func StopShared() {
	if shared == nil {
		return
	}
	dir := sharedDir
	shared.Shutdown()
	shared.WaitForShutdown()
	_ = os.RemoveAll(dir)
}

// Prefix turns a test's directory into a name usable as a JetStream stream
// or bucket prefix: the same dir gives the same prefix, so reopening a
// store on a dir finds what the last store on it left.
func Prefix(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "t" + hex.EncodeToString(sum[:6])
}

// Cluster is three servers on loopback forming one JetStream cluster.
type Cluster struct {
	Servers []*server.Server
	opts    []*server.Options
	dirs    []string
}

// URLs lists the client URLs of every server that runs, comma-separated
// as nats.go takes them.
func (c *Cluster) URLs() string {
	var urls []string
	for _, s := range c.Servers {
		if s != nil && s.Running() {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// StartCluster runs three JetStream servers on loopback that route to each
// other, waits until they have a meta leader, and stops them when the test
// ends.
func StartCluster(t testing.TB, o Options) *Cluster {
	t.Helper()
	ports := freePorts(t, 3)
	routes := make([]string, 0, len(ports))
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://%s:%d", loopback, p))
	}
	c := &Cluster{}
	for i := range 3 {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i))
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       loopback,
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   dir,
			NoLog:      true,
			NoSigs:     true,
			SyncAlways: o.SyncAlways,
			Cluster: server.ClusterOpts{
				Name: "natstest",
				Host: loopback,
				Port: ports[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		c.Servers = append(c.Servers, s)
		c.opts = append(c.opts, opts)
		c.dirs = append(c.dirs, dir)
	}
	t.Cleanup(func() {
		for _, s := range c.Servers {
			if s != nil {
				s.Shutdown()
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !c.ready() {
		if time.Now().After(deadline) {
			t.Fatal("natstest: the cluster has no JetStream meta leader that sees its three servers after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}

// ready reports whether every server takes connections and is current
// with the JetStream meta group, and its leader sees all three servers
// online: until then a stream of three replicas finds no place ("no
// suitable peers for placement").
func (c *Cluster) ready() bool {
	peers := 0
	for _, s := range c.Servers {
		if !s.ReadyForConnections(time.Second) || !s.JetStreamIsCurrent() {
			return false
		}
		if s.JetStreamIsLeader() {
			peers = len(s.JetStreamClusterPeers())
		}
	}
	return peers == len(c.Servers)
}

// Stop shuts server i down, as a crash of that node would.
func (c *Cluster) Stop(i int) {
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ls := make([]net.Listener, 0, n)
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", loopback+":0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// JetStream connects to url for the rest of the test and returns its
// JetStream context, for tests that set up streams by hand.
func JetStream(t testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
