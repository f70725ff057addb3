// Package natscluster runs a NATS JetStream cluster of three nats-server
// processes on loopback, for the tests that need what a server embedded in
// the test process cannot show: a node killed with SIGKILL (no shutdown
// code runs; its files are as the kernel left them) and started again on
// the same store. StartServer runs one server alone, as a single-node
// deployment does, for the benchmarks that measure against it. Each node has its own configuration file, JetStream file
// store and log in a directory of the test. Binary finds the nats-server to
// run; hack/nats/nats-server.sh builds it from the Go module proxy.
package natscluster

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Size is the number of nodes: the smallest cluster in which a stream of
// three replicas keeps accepting while one node is down.
const Size = 3

// readyTimeout bounds the wait for a node's /healthz after a start: a
// restarted node catches up on what it missed before it is healthy.
const readyTimeout = time.Minute

// TB is what the cluster needs of a test: *testing.T and Ginkgo's
// GinkgoT() both are one.
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Binary returns the path of the nats-server to run: what
// hack/nats/nats-server.sh under repoRoot provides ($NATS_SERVER_BIN when
// set, as `make test` sets it; else bin/nats-server/<version>, built from
// the Go module proxy when it is missing).
func Binary(repoRoot string) (string, error) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "hack", "nats", "nats-server.sh"))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/nats/nats-server.sh: %w\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// Options say how to run the cluster.
type Options struct {
	// Binary is the nats-server to run (see Binary).
	Binary string
	// SyncAlways makes every node fsync each write before acknowledging
	// it (JetStream's sync_interval: always). The default is the server's
	// own: written at once, synced every two minutes.
	SyncAlways bool
}

// Cluster is three nats-server processes routed to each other.
type Cluster struct {
	t     TB
	bin   string
	nodes []*node
	// profPort is where StartServer's server serves pprof; 0 for none.
	profPort int
}

type node struct {
	name       string
	dir        string
	conf       string
	log        string
	clientPort int
	httpPort   int
	// cmd and exited are the running process; nil once killed.
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start writes the nodes' configuration files, starts the three servers,
// waits until each reports itself healthy (JetStream current with a meta
// leader) and kills them when the test ends.
func Start(t TB, o Options) *Cluster {
	t.Helper()
	if o.Binary == "" {
		t.Fatalf("natscluster: Options.Binary is empty: find one with natscluster.Binary")
	}
	ports, err := freePorts(3 * Size)
	if err != nil {
		t.Fatalf("natscluster: %v", err)
	}
	clientPorts, clusterPorts, httpPorts := ports[:Size], ports[Size:2*Size], ports[2*Size:]
	routes := make([]string, Size)
	for i, p := range clusterPorts {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	root := t.TempDir()
	c := &Cluster{t: t, bin: o.Binary}
	for i := range Size {
		n := &node{
			name:       fmt.Sprintf("n%d", i),
			dir:        filepath.Join(root, fmt.Sprintf("n%d", i)),
			clientPort: clientPorts[i],
			httpPort:   httpPorts[i],
		}
		n.conf = filepath.Join(n.dir, "nats.conf")
		n.log = filepath.Join(n.dir, "nats.log")
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatalf("natscluster: %v", err)
		}
		conf := config(n, clusterPorts[i], routes, o.SyncAlways)
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatalf("natscluster: %v", err)
		}
		c.nodes = append(c.nodes, n)
	}
	t.Cleanup(func() {
		for i, n := range c.nodes {
			if n.cmd != nil {
				c.kill(n)
			}
			if t.Failed() {
				t.Logf("natscluster: the end of node %d's log (%s):\n%s", i, n.log, tail(n.log, 30))
			}
		}
	})
	for _, n := range c.nodes {
		if err := c.start(n); err != nil {
			t.Fatalf("natscluster: %v", err)
		}
	}
	for i := range c.nodes {
		c.waitHealthy(i)
	}
	return c
}

// config is a node's configuration file: its client, monitoring and route
// listeners on loopback, its JetStream file store, and the routes to every
// node (its own included, which the server skips).
func config(n *node, clusterPort int, routes []string, syncAlways bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\n", n.name)
	fmt.Fprintf(&b, "listen: 127.0.0.1:%d\n", n.clientPort)
	fmt.Fprintf(&b, "http: 127.0.0.1:%d\n", n.httpPort)
	b.WriteString("jetstream {\n")
	// The server keeps its files in store_dir/jetstream.
	fmt.Fprintf(&b, "  store_dir: %q\n", n.dir)
	if syncAlways {
		b.WriteString("  sync_interval: always\n")
	}
	b.WriteString("}\n")
	b.WriteString("cluster {\n  name: natscluster\n")
	fmt.Fprintf(&b, "  listen: 127.0.0.1:%d\n", clusterPort)
	fmt.Fprintf(&b, "  routes: [%s]\n", strings.Join(routes, ", "))
	b.WriteString("}\n")
	return b.String()
}

// start runs n's server, its output appended to its log.
func (c *Cluster) start(n *node) error {
	log, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, "--config", n.conf)
	cmd.Stdout, cmd.Stderr = log, log
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return fmt.Errorf("start %s: %w", c.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = log.Close()
		close(exited)
	}()
	n.cmd, n.exited = cmd, exited
	return nil
}

// kill sends n's process SIGKILL and waits until it is gone.
func (c *Cluster) kill(n *node) {
	_ = n.cmd.Process.Kill()
	<-n.exited
	n.cmd, n.exited = nil, nil
}

// URLs lists every node's client URL, comma-separated as nats.go and
// --nats-url take them; a client reconnects through the list when its
// node is down.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.URL(i)
	}
	return strings.Join(urls, ",")
}

// URL is node i's client URL.
func (c *Cluster) URL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.nodes[i].clientPort)
}

// MonitorURL is node i's monitoring endpoint (/healthz, /jsz, /varz).
func (c *Cluster) MonitorURL(i int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", c.nodes[i].httpPort)
}

// ServerName is node i's server_name, as JetStream's cluster information
// names its leader and replicas.
func (c *Cluster) ServerName(i int) string { return c.nodes[i].name }

// Kill sends node i SIGKILL and waits until its process is gone: a crash,
// not a shutdown.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	n := c.nodes[i]
	if n.cmd == nil {
		c.t.Fatalf("natscluster: Kill(%d): node %s is not running", i, n.name)
	}
	c.kill(n)
}

// Restart starts node i again on its configuration and store, and waits
// until it is healthy: back in the cluster, its streams caught up.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	n := c.nodes[i]
	if n.cmd != nil {
		c.t.Fatalf("natscluster: Restart(%d): node %s is running; Kill it first", i, n.name)
	}
	if err := c.start(n); err != nil {
		c.t.Fatalf("natscluster: %v", err)
	}
	c.waitHealthy(i)
}

// waitHealthy polls node i's /healthz until it answers 200: JetStream is
// current with the meta leader and every stream replica on the node has
// caught up.
func (c *Cluster) waitHealthy(i int) {
	c.t.Helper()
	n := c.nodes[i]
	url := c.MonitorURL(i) + "/healthz"
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	last := errors.New("no answer yet")
	for time.Now().Before(deadline) {
		select {
		case <-n.exited:
			c.t.Fatalf("natscluster: node %s exited while starting; its log:\n%s", n.name, tail(n.log, 30))
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			body := new(bytes.Buffer)
			_, _ = body.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(body.String()))
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("natscluster: node %s not healthy after %s: %v", n.name, readyTimeout, last)
}

// freePorts returns n loopback ports that were free a moment ago: all are
// held open together so that none repeats.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer func() { _ = l.Close() }()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail is the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read it: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
