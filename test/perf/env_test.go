package perf

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// managerEnv names a manager binary to measure instead of building this
// checkout's, e.g. an earlier commit's, to compare the two in one run.
const managerEnv = "EVENTSOURCING_PERF_MANAGER"

// env is the control plane and the manager binary the benchmarks share.
type env struct {
	testEnv    *envtest.Environment
	kubeconfig string
	manager    string // the manager binary
	kubectl    string
}

var (
	sharedEnv     *env
	sharedEnvErr  error
	sharedEnvOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEnv != nil {
		_ = sharedEnv.testEnv.Stop()
		_ = os.RemoveAll(filepath.Dir(sharedEnv.kubeconfig))
	}
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// setup starts kube-apiserver and etcd (KUBEBUILDER_ASSETS, which the
// Makefile sets) with the CRDs, and builds the manager, once per run.
func setup(b *testing.B) *env {
	b.Helper()
	sharedEnvOnce.Do(func() { sharedEnv, sharedEnvErr = newEnv() })
	if sharedEnvErr != nil {
		b.Fatal(sharedEnvErr)
	}
	return sharedEnv
}

func newEnv() (*env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run these benchmarks with make bench-manager")
	}
	dir, err := os.MkdirTemp("", "eventsourcing-perf-")
	if err != nil {
		return nil, err
	}
	e := &env{
		testEnv: &envtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "config", "crd", "bases")},
			ErrorIfCRDPathMissing: true,
			BinaryAssetsDirectory: assets,
		},
		kubeconfig: filepath.Join(dir, "kubeconfig"),
		manager:    filepath.Join(dir, "manager"),
		kubectl:    filepath.Join(assets, "kubectl"),
	}
	if _, err := e.testEnv.Start(); err != nil {
		return nil, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	user, err := e.testEnv.AddUser(envtest.User{Name: "perf-manager", Groups: []string{"system:masters"}}, nil)
	if err == nil {
		var kc []byte
		if kc, err = user.KubeConfig(); err == nil {
			err = os.WriteFile(e.kubeconfig, kc, 0o600)
		}
	}
	if err != nil {
		_ = e.testEnv.Stop()
		return nil, fmt.Errorf("kubeconfig for the manager: %w", err)
	}
	if bin := os.Getenv(managerEnv); bin != "" {
		e.manager = bin
		return e, nil
	}
	args := []string{"build", "-o", e.manager}
	if os.Getenv(profileEnv) != "" {
		args = append(args, "-tags", "pprof") // cmd/manager/pprof.go
	}
	build := exec.Command("go", append(args, "./cmd/manager")...)
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		_ = e.testEnv.Stop()
		return nil, fmt.Errorf("go build ./cmd/manager: %w\n%s", err, out)
	}
	return e, nil
}

// applySamples creates namespace ns with config/samples in it (the stream
// items-events and its three projections, as the quick start has them).
func (e *env) applySamples(b *testing.B, ns string) {
	b.Helper()
	e.run(b, "create", "namespace", ns)
	e.run(b, "apply", "-n", ns, "-k", "config/samples")
}

func (e *env) run(b *testing.B, args ...string) {
	b.Helper()
	cmd := exec.Command(e.kubectl, append([]string{"--kubeconfig", e.kubeconfig}, args...)...)
	cmd.Dir = repoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// manager is the manager binary running as its own process.
type manager struct {
	cmd    *exec.Cmd
	exited chan struct{}
	api    string // base URL of the HTTP API
	probe  string // address of /readyz
	log    string // path of its log
}

func freeAddress(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// startManager runs the manager with storage ("memory", or "disk" in
// dataDir) and flags, and waits until it is ready. It is killed when b
// ends.
func (e *env) startManager(b *testing.B, storage, dataDir string, flags ...string) *manager {
	b.Helper()
	return e.startManagerBinary(b, e.manager, storage, dataDir, flags...)
}

// startManagerBinary is startManager for the manager binary bin.
func (e *env) startManagerBinary(b *testing.B, bin, storage, dataDir string, flags ...string) *manager {
	b.Helper()
	return e.startManagerWithEnv(b, bin, storage, dataDir, nil, flags...)
}

// startManagerWithEnv is startManagerBinary with environ added to the
// manager's environment.
func (e *env) startManagerWithEnv(b *testing.B, bin, storage, dataDir string, environ []string, flags ...string) *manager {
	b.Helper()
	m := &manager{api: "http://" + freeAddress(b), probe: freeAddress(b), exited: make(chan struct{})}
	args := []string{
		"--ingest-auth=none", "--ingest-bind-address=" + strings.TrimPrefix(m.api, "http://"),
		"--health-probe-bind-address=" + m.probe, "--metrics-bind-address=0", "--storage=" + storage,
	}
	if storage == "disk" {
		args = append(args, "--data-dir="+dataDir)
	}
	args = append(args, flags...)
	logFile, err := os.CreateTemp("", "eventsourcing-perf-manager-*.log")
	if err != nil {
		b.Fatal(err)
	}
	m.log = logFile.Name()
	m.cmd = exec.Command(bin, args...)
	m.cmd.Env = append(append(os.Environ(), "KUBECONFIG="+e.kubeconfig), environ...)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	if err := m.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		_ = m.cmd.Wait()
		_ = logFile.Close()
		close(m.exited)
	}()
	b.Cleanup(func() {
		m.kill()
		if !b.Failed() {
			_ = os.Remove(m.log)
		}
	})
	if err := m.waitReady(2 * time.Minute); err != nil {
		b.Fatalf("%v (log: %s)", err, m.log)
	}
	return m
}

// waitReady polls /readyz until it answers 200.
func (m *manager) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-m.exited:
			return fmt.Errorf("the manager exited before it was ready")
		default:
		}
		resp, err := http.Get("http://" + m.probe + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the manager was not ready within %s", timeout)
}

// cpuTime is the CPU time the manager has used so far (pidCPU).
func (m *manager) cpuTime() (time.Duration, bool) { return pidCPU(m.cmd.Process.Pid) }

// pidCPU is the CPU time process pid has used so far, user and system,
// all its threads (Linux's /proc, in clock ticks of 10 ms); false where
// /proc cannot tell.
func pidCPU(pid int) (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The fields after the command's name, which is in parentheses and may
	// hold anything: state is the first, utime the 12th, stime the 13th.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const tick = 10 * time.Millisecond // USER_HZ, 100 on every Linux /proc
	return time.Duration(utime+stime) * tick, true
}

// kill ends the manager with SIGKILL, as a crash would, and waits.
func (m *manager) kill() {
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
}
