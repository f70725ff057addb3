package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// existingFile is a file the flags that name one can point at.
func existingFile(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNATSFlagsAreRefusedWithoutNATSStorage(t *testing.T) {
	for _, storage := range []string{"memory", "disk"} {
		for _, flag := range []string{"--nats-url=nats://nats:4222", "--nats-creds=/c", "--nats-ca=/ca.pem", "--nats-replicas=3",
			// The default value, given explicitly, is still a flag that does nothing here.
			"--nats-url=nats://127.0.0.1:4222"} {
			args := []string{"--storage=" + storage, "--data-dir=/d", flag}
			if storage == "memory" {
				args = []string{flag}
			}
			_, err := parseOptions(args, io.Discard)
			name, _, _ := strings.Cut(flag, "=")
			if err == nil || !strings.Contains(err.Error(), name+": only used with --storage=nats") {
				t.Errorf("parseOptions(%v) = %v, want an error naming %s as only used with --storage=nats", args, err, name)
			}
		}
	}
}

func TestRefusedNATSFlagsSayWhatToChange(t *testing.T) {
	ca := existingFile(t, "ca.pem")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no replicas", []string{"--nats-replicas=0"}, "want 1 to 5"},
		{"more replicas than JetStream takes", []string{"--nats-replicas=6"}, "want 1 to 5"},
		{"no URL", []string{"--nats-url="}, "no server"},
		{"only commas", []string{"--nats-url= , ,"}, "no server"},
		{"an HTTP URL", []string{"--nats-url=http://nats:8222"}, "want nats://, tls://, ws:// or wss://"},
		{"no host", []string{"--nats-url=nats://:4222"}, "names no host"},
		{"not a URL", []string{"--nats-url=nats://a b:4222"}, "server 1 is not a URL"},
		{"plain and TLS mixed", []string{"--nats-url=nats://a:4222,tls://b:4222"}, "same scheme"},
		{"plain and websocket mixed", []string{"--nats-url=nats://a:4222,ws://b:8080"}, "same scheme"},
		{"a CA for a plain URL", []string{"--nats-url=nats://nats:4222", "--nats-ca=" + ca}, "write --nats-url as tls://"},
		{"a CA for a URL without a scheme", []string{"--nats-url=nats:4222", "--nats-ca=" + ca}, "write --nats-url as tls://"},
		{"a CA for the default URL", []string{"--nats-ca=" + ca}, "write --nats-url as tls://"},
		{"a CA file that is not there", []string{"--nats-url=tls://nats:4222", "--nats-ca=/no/ca.pem"}, "--nats-ca"},
		{"a credentials file that is not there", []string{"--nats-creds=/no/user.creds"}, "--nats-creds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--storage=nats"}, tt.args...)
			_, err := parseOptions(args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseOptions(%v) = %v, want an error containing %q", args, err, tt.want)
			}
		})
	}
}

func TestNATSURLErrorsDoNotShowCredentials(t *testing.T) {
	for _, u := range []string{"http://alice:s3cret@nats:4222", "nats://s3cret@:4222"} {
		_, err := parseOptions([]string{"--storage=nats", "--nats-url=" + u}, io.Discard)
		if err == nil {
			t.Fatalf("--nats-url=%s accepted, want refused", u)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("--nats-url=%s: the error shows the secret: %v", u, err)
		}
	}
}

func TestNATSStorageAcceptsWhatNATSGoDials(t *testing.T) {
	ca := existingFile(t, "ca.pem")
	creds := existingFile(t, "user.creds")
	for _, args := range [][]string{
		{},
		{"--nats-url=nats://nats.nats.svc:4222"},
		{"--nats-url=nats://n0:4222, nats://n1:4222,nats://n2:4222", "--nats-replicas=3"},
		{"--nats-url=n0:4222,n1"},
		{"--nats-url=tls://n0:4222,tls://n1:4222", "--nats-ca=" + ca, "--nats-creds=" + creds},
		{"--nats-url=tls://nats:4222"},
		{"--nats-url=wss://nats.example.com", "--nats-ca=" + ca},
		{"--nats-replicas=5"},
	} {
		args = append([]string{"--storage=nats"}, args...)
		if _, err := parseOptions(args, io.Discard); err != nil {
			t.Errorf("parseOptions(%v) = %v, want accepted", args, err)
		}
	}
}

func TestNATSOptionsCarryTheFlagsAndNameTheConnectionAfterTheHost(t *testing.T) {
	ca := existingFile(t, "ca.pem")
	creds := existingFile(t, "user.creds")
	o, err := parseOptions([]string{"--storage=nats", "--nats-url=tls://n0:4222,tls://n1:4222",
		"--nats-ca=" + ca, "--nats-creds=" + creds, "--nats-replicas=3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := o.natsOptions()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != "tls://n0:4222,tls://n1:4222" || got.CA != ca || got.Creds != creds || got.Replicas != 3 || got.Name != host {
		t.Fatalf("natsOptions() = %+v, want the flags' values and Name %q", got, host)
	}
	if got.Prefix != "" {
		t.Errorf("natsOptions().Prefix = %q, want the store's default", got.Prefix)
	}
}

// outsideCluster makes the manager see no pod namespace file, as on a
// developer's machine, whatever machine the test runs on.
func outsideCluster(t *testing.T) {
	t.Helper()
	old := inClusterNamespaceFile
	inClusterNamespaceFile = filepath.Join(t.TempDir(), "no-namespace")
	t.Cleanup(func() { inClusterNamespaceFile = old })
}

// inPod gives the manager a pod namespace file.
func inPod(t *testing.T) {
	t.Helper()
	old := inClusterNamespaceFile
	inClusterNamespaceFile = existingFile(t, "namespace")
	t.Cleanup(func() { inClusterNamespaceFile = old })
}

func TestLeaderElectionOutsideAClusterNeedsALeaseNamespace(t *testing.T) {
	outsideCluster(t)
	_, err := parseOptions([]string{"--leader-elect"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--leader-elect outside a cluster needs --leader-election-namespace") {
		t.Fatalf("--leader-elect outside a cluster: %v, want an error asking for --leader-election-namespace", err)
	}
	for _, args := range [][]string{
		{"--leader-elect", "--leader-election-namespace=eventsourcing-system"},
		{"--leader-elect=false"},
		{},
	} {
		if _, err := parseOptions(args, io.Discard); err != nil {
			t.Errorf("parseOptions(%v) outside a cluster = %v, want accepted", args, err)
		}
	}
}

func TestLeaderElectionInAPodDefaultsToThePodsNamespace(t *testing.T) {
	inPod(t)
	if _, err := parseOptions([]string{"--leader-elect"}, io.Discard); err != nil {
		t.Fatalf("--leader-elect in a pod: %v, want accepted", err)
	}
}

func TestNewEngineRefusesAStorageItCannotOpen(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o.storage = "s3"
	if _, _, _, err := newEngine(o, nil); err == nil || !strings.Contains(err.Error(), "--storage=s3") {
		t.Fatalf("newEngine with --storage=s3 = %v, want an error naming it (not memory storage in its place)", err)
	}
}

// The Deployment of config/nats runs the manager with flags it accepts, in
// a pod (where --leader-elect needs no namespace flag).
func TestTheNATSOverlaysFlagsPassTheManagersChecks(t *testing.T) {
	data, err := os.ReadFile("../../config/nats/manager_nats_patch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var patch struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name string   `json:"name"`
						Args []string `json:"args"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &patch); err != nil {
		t.Fatal(err)
	}
	containers := patch.Spec.Template.Spec.Containers
	if len(containers) != 1 || containers[0].Name != "manager" || len(containers[0].Args) == 0 {
		t.Fatalf("config/nats/manager_nats_patch.yaml patches containers %+v; want the manager's args", containers)
	}
	inPod(t)
	o, err := parseOptions(containers[0].Args, io.Discard)
	if err != nil {
		t.Fatalf("the manager refuses config/nats's args %q: %v", containers[0].Args, err)
	}
	if o.storage != "nats" || o.natsReplicas != 3 || !o.leaderElect {
		t.Fatalf("config/nats's args give storage %q, %d replicas, leader election %v; want nats, 3, on",
			o.storage, o.natsReplicas, o.leaderElect)
	}
}
