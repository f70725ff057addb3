package natscluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// StartServer runs one nats-server with JetStream on a file store and no
// cluster, as a single-node deployment runs it, and kills it when the test
// ends. The Cluster it returns has that one node, node 0. With profile,
// the server also serves Go's pprof endpoints on ProfileURL.
func StartServer(t TB, o Options, profile bool) *Cluster {
	t.Helper()
	if o.Binary == "" {
		t.Fatalf("natscluster: Options.Binary is empty: find one with natscluster.Binary")
	}
	ports, err := freePorts(3)
	if err != nil {
		t.Fatalf("natscluster: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "n0")
	n := &node{name: "n0", dir: dir, clientPort: ports[0], httpPort: ports[1],
		conf: filepath.Join(dir, "nats.conf"), log: filepath.Join(dir, "nats.log")}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		t.Fatalf("natscluster: %v", err)
	}
	profPort := 0
	if profile {
		profPort = ports[2]
	}
	c := &Cluster{t: t, bin: o.Binary, nodes: []*node{n}, profPort: profPort}
	if err := os.WriteFile(n.conf, []byte(serverConfig(n, o.SyncAlways, profPort)), 0o600); err != nil {
		t.Fatalf("natscluster: %v", err)
	}
	t.Cleanup(func() {
		if n.cmd != nil {
			c.kill(n)
		}
		if t.Failed() {
			t.Logf("natscluster: the end of the server's log (%s):\n%s", n.log, tail(n.log, 30))
		}
	})
	if err := c.start(n); err != nil {
		t.Fatalf("natscluster: %v", err)
	}
	c.waitHealthy(0)
	return c
}

// serverConfig is a lone server's configuration file: its client and
// monitoring listeners on loopback, its profiling one with profPort, and
// its JetStream file store.
func serverConfig(n *node, syncAlways bool, profPort int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\n", n.name)
	fmt.Fprintf(&b, "listen: 127.0.0.1:%d\n", n.clientPort)
	fmt.Fprintf(&b, "http: 127.0.0.1:%d\n", n.httpPort)
	if profPort > 0 {
		// On the client listener's host, loopback.
		fmt.Fprintf(&b, "prof_port: %d\n", profPort)
	}
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n", n.dir)
	if syncAlways {
		b.WriteString("  sync_interval: always\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// Pid is the process id of node i's server, 0 while it is killed: for
// reading what the server costs (/proc/<pid>/stat).
func (c *Cluster) Pid(i int) int {
	if n := c.nodes[i]; n.cmd != nil {
		return n.cmd.Process.Pid
	}
	return 0
}

// ProfileURL is the base of the server's pprof endpoints
// (.../debug/pprof/profile), "" unless StartServer was asked to profile.
func (c *Cluster) ProfileURL() string {
	if c.profPort == 0 {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d", c.profPort)
}
