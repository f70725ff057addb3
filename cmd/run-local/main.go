// Command run-local is what `make run` runs: the manager against the
// cluster the user's kubeconfig names, or, when none is configured, against
// a local control plane (the kube-apiserver and etcd hack/k8s/binaries.sh
// provides) that it starts, fills with the CRDs and stops again on Ctrl-C.
// The manager runs as its own process, with memory storage (or NATS
// JetStream with --storage=nats: a server run-local starts, unless
// --nats-url names one) and ingest without auth on a loopback address, Reactors allowed to deliver to sinks
// on loopback (a sink run beside it, such as hack/reactor-sink), and logs to
// a file: once it is ready the walkthrough is printed, and stays the last
// thing on the terminal.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// options are run-local's flags; the defaults are what `make run` needs.
type options struct {
	manager     string // the manager binary
	k8sDir      string // kube-apiserver, etcd and kubectl; "": what hack/k8s/binaries.sh provides
	stateDir    string // where the local control plane's kubeconfig and the manager's log go
	managerLog  string // "": stateDir/manager.log
	crdDir      string
	ingestAddr  string
	probeAddr   string
	storage     string // memory or nats
	natsURL     string // with nats: the servers to use; "": run-local starts one
	managerArgs []string
	// localNATSURL is the URL of the NATS server run-local started, if any.
	localNATSURL string
}

func main() {
	var o options
	fs := flag.NewFlagSet("run-local", flag.ContinueOnError)
	fs.StringVar(&o.manager, "manager", "bin/manager", "the manager binary to run")
	fs.StringVar(&o.k8sDir, "k8s-dir", "",
		"the directory of kube-apiserver, etcd and kubectl for a local control plane "+
			"(default: the one hack/k8s/binaries.sh finds, downloads or builds)")
	fs.StringVar(&o.stateDir, "state-dir", "bin/local", "where the local control plane's kubeconfig and the manager's log are written")
	fs.StringVar(&o.managerLog, "manager-log", "", "the file the manager logs to (default: manager.log in --state-dir)")
	fs.StringVar(&o.crdDir, "crd-dir", "config/crd/bases", "the CRDs to install")
	fs.StringVar(&o.ingestAddr, "ingest-bind-address", "127.0.0.1:8080",
		"the manager's HTTP API (a loopback address: ingest runs without auth)")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", "127.0.0.1:8081", "the manager's health probes")
	fs.StringVar(&o.storage, "storage", storageMemory,
		"the manager's storage: memory, or nats (NATS JetStream; without --nats-url run-local starts a server, its files in --state-dir)")
	fs.StringVar(&o.natsURL, "nats-url", "", "with --storage=nats: the NATS servers the manager uses instead of one run-local starts")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	o.managerArgs = fs.Args() // after --: passed to the manager as they are
	if o.managerLog == "" {
		o.managerLog = filepath.Join(o.stateDir, "manager.log")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "run-local:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// run brings up the cluster, runs the manager until ctx ends or the manager
// exits, and tears down what it started. It returns the manager's exit code.
func run(ctx context.Context, o options, out io.Writer) (int, error) {
	storage, err := planStorage(o)
	if err != nil {
		return 0, err
	}
	cfg, kubeconfig, stopCluster, err := cluster(ctx, &o, out)
	if err != nil {
		return 0, err
	}
	defer stopCluster()

	say(out, "run-local: installing the CRDs from %s\n", o.crdDir)
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{o.crdDir}, ErrorIfPathMissing: true}); err != nil {
		return 0, fmt.Errorf("install the CRDs: %w", err)
	}

	if storage.localNATS {
		say(out, "run-local: starting a NATS server with JetStream for --storage=nats; its files in %s, its log %s\n",
			o.natsDir(), o.natsLog())
		nats, err := startNATS(o.natsDir(), o.natsLog())
		if err != nil {
			return 0, err
		}
		// Deferred after stopCluster, so run before it: the manager has
		// stopped by then, the control plane goes last.
		defer func() {
			say(out, "run-local: stopping the NATS server\n")
			nats.Stop()
		}()
		o.localNATSURL = nats.URL()
		storage.args = append(storage.args, "--nats-url="+o.localNATSURL)
	}

	// Its log goes to a file, written for a person (zap's console encoder,
	// readable times), so that the walkthrough stays on the terminal.
	logFile, err := createLog(o.managerLog)
	if err != nil {
		return 0, err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(o.manager, managerArgs(o, storage.args)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = os.Environ()
	if kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+kubeconfig)
	}
	// Its own process group: a Ctrl-C reaches run-local, which forwards it,
	// so the manager drains while the control plane is still up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	say(out, "run-local: starting the manager; it logs to %s\n", o.managerLog)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the manager (%s; `make build` makes it): %w", o.manager, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	go func() {
		if waitReady(ctx, "http://"+o.probeAddr+"/readyz") {
			say(out, "%s", walkthrough(o, kubeconfig != ""))
		}
	}()

	select {
	case err := <-exited:
		code := exitCode(err)
		say(out, "run-local: the manager exited (status %d); the end of %s:\n%s", code, o.managerLog, logTail(o.managerLog, 20))
		return code, nil
	case <-ctx.Done():
	}
	say(out, "run-local: stopping the manager\n")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		return exitCode(err), nil
	case <-time.After(45 * time.Second):
		_ = cmd.Process.Kill()
		return 1, fmt.Errorf("the manager did not stop within 45s of SIGTERM; killed it (%v)", <-exited)
	}
}

// managerArgs are the manager's flags: run-local's, then the storage's,
// then the user's (after --), which win over both.
func managerArgs(o options, storage []string) []string {
	args := []string{
		"--ingest-auth=none", "--ingest-bind-address=" + o.ingestAddr,
		"--health-probe-bind-address=" + o.probeAddr, "--metrics-bind-address=0",
		"--allow-private-sinks",
		"--zap-encoder=console", "--zap-time-encoding=iso8601",
	}
	args = append(args, storage...)
	return append(args, o.managerArgs...)
}

// cluster returns the rest config of the cluster the user's kubeconfig
// names, or starts a local control plane when there is none. kubeconfig is
// the file the manager must use ("" keeps the user's own), stop tears down
// what was started.
func cluster(ctx context.Context, o *options, out io.Writer) (*rest.Config, string, func(), error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	switch {
	case err == nil:
		if err := reachable(cfg); err != nil {
			return nil, "", nil, fmt.Errorf("the cluster your kubeconfig names (%s) does not answer: %w; "+
				"start it, or unset KUBECONFIG (and move ~/.kube/config away) to run on a local control plane", cfg.Host, err)
		}
		say(out, "run-local: using the cluster your kubeconfig names, %s\n", cfg.Host)
		return cfg, "", func() {}, nil
	case !clientcmd.IsEmptyConfig(err):
		return nil, "", nil, fmt.Errorf("read your kubeconfig: %w", err)
	}
	return startLocal(ctx, o, out)
}

// reachable asks the API server for its version, briefly.
func reachable(cfg *rest.Config) error {
	c := rest.CopyConfig(cfg)
	c.Timeout = 5 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(c)
	if err != nil {
		return err
	}
	_, err = dc.ServerVersion()
	return err
}

// startLocal starts kube-apiserver and etcd (setting o.k8sDir to the
// directory they came from) and writes an admin kubeconfig for them.
func startLocal(ctx context.Context, o *options, out io.Writer) (*rest.Config, string, func(), error) {
	say(out, "run-local: no cluster configured: starting a local control plane (kube-apiserver and etcd)\n")
	dir, err := controlPlaneBinaries(ctx, o.k8sDir, out)
	if err != nil {
		return nil, "", nil, err
	}
	o.k8sDir = dir
	env := &envtest.Environment{BinaryAssetsDirectory: o.k8sDir, ControlPlaneStartTimeout: 2 * time.Minute}
	cfg, err := env.Start()
	if err != nil {
		return nil, "", nil, fmt.Errorf("start the local control plane from %s: %w", o.k8sDir, err)
	}
	stop := func() {
		say(out, "run-local: stopping the local control plane\n")
		if err := env.Stop(); err != nil {
			say(out, "run-local: stopping the local control plane: %v\n", err)
		}
	}
	kubeconfig, err := writeKubeconfig(env, o.stateDir)
	if err != nil {
		stop()
		return nil, "", nil, err
	}
	return cfg, kubeconfig, stop, nil
}

// controlPlaneBinaries returns the directory of kube-apiserver, etcd and
// kubectl: dir when it holds them, else the one hack/k8s/binaries.sh
// provides into dir or, when dir is "", wherever it finds them first
// (KUBEBUILDER_ASSETS, bin/k8s/v<version>, setup-envtest's download, or a
// build whose progress it shows on out).
func controlPlaneBinaries(ctx context.Context, dir string, out io.Writer) (string, error) {
	if dir != "" && holdsBinaries(dir) {
		return dir, nil
	}
	script := exec.CommandContext(ctx, "hack/k8s/binaries.sh")
	if dir != "" {
		script.Args = append(script.Args, dir)
		// Into dir, as asked, not whatever KUBEBUILDER_ASSETS names.
		script.Env = append(os.Environ(), "KUBEBUILDER_ASSETS=")
	}
	script.Stderr = out
	printed, err := script.Output()
	if err != nil {
		return "", fmt.Errorf("provide kube-apiserver, etcd and kubectl (hack/k8s/binaries.sh): %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(printed)), "\n")
	return relativeToWorkingDir(lines[len(lines)-1]), nil
}

// holdsBinaries reports whether dir has kube-apiserver, etcd and kubectl.
func holdsBinaries(dir string) bool {
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return false
		}
	}
	return true
}

// relativeToWorkingDir shortens a path below the working directory to a
// relative one, which the walkthrough prints as "$PWD/...".
func relativeToWorkingDir(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return rel
}

// createLog creates (or empties) the manager's log file.
func createLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create the manager's log: %w", err)
	}
	return f, nil
}

// logTail is the last n lines of the file at path, for a manager that
// stopped on its own: its reason is there.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read it: %v)\n", err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	tail := strings.Join(lines, "")
	if tail != "" && !strings.HasSuffix(tail, "\n") {
		tail += "\n"
	}
	return tail
}

// writeKubeconfig writes a system:masters kubeconfig for the local control
// plane to stateDir/kubeconfig, the path the walkthrough exports.
func writeKubeconfig(env *envtest.Environment, stateDir string) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "local-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("create an admin user on the local control plane: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("render the local kubeconfig: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return "", err
	}
	path, err := filepath.Abs(filepath.Join(stateDir, "kubeconfig"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("write the local kubeconfig: %w", err)
	}
	return path, nil
}

// waitReady polls url until it answers 200 or ctx ends.
func waitReady(ctx context.Context, url string) bool {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// exitCode is the manager's exit status from cmd.Wait's error.
func exitCode(err error) int {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

// say prints one of run-local's own lines; a terminal that is gone is no
// reason to stop.
func say(out io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(out, format, args...)
}
