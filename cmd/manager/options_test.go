package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/sinktoken"
)

func TestDefaultOptionsAreTheScaffoldsAndTheDesigns(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatalf("parseOptions(no flags) = %v, want nil", err)
	}
	if o.ingestAddr != ":8080" || o.ingestAuth != "kubernetes" || o.storage != "memory" ||
		o.natsURL != "nats://127.0.0.1:4222" || o.natsReplicas != 1 || o.natsCreds != "" || o.natsCA != "" ||
		o.deadLetterStream != "dead" || o.pollingInterval != 100*time.Millisecond || o.maxEventBytes != 1<<20 ||
		o.probeAddr != ":8081" || o.metricsAddr != "0" || !o.metricsSecure || o.logFormat != "text" || o.allowPrivateSinks ||
		o.tokenAccount != "" || o.leaseDuration != 15*time.Second || o.renewDeadline != 10*time.Second || o.retryPeriod != 2*time.Second {
		t.Fatalf("defaults = %+v, want the documented ones", o)
	}
}

func TestRefusedFlagsSayWhatToChange(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--no-such-flag"}, "no-such-flag"},
		{"no auth on every interface", []string{"--ingest-auth=none"}, "loopback"},
		{"no auth on a routable address", []string{"--ingest-auth=none", "--ingest-bind-address=10.0.0.1:8080"}, "loopback"},
		{"unknown auth", []string{"--ingest-auth=basic"}, "want kubernetes or none"},
		{"data dir with memory storage", []string{"--data-dir=/data"}, "only used with --storage=disk"},
		{"unknown storage", []string{"--storage=s3"}, "want memory, disk or nats"},
		{"data dir with nats storage", []string{"--storage=nats", "--data-dir=/data"}, "only used with --storage=disk"},
		{"restore with nats storage", []string{"--storage=nats", "--restore-from=/snap.db"}, "only used with --storage=disk"},
		{"disk storage without a data dir", []string{"--storage=disk"}, "needs --data-dir"},
		{"restore with memory storage", []string{"--restore-from=/snap.db"}, "only used with --storage=disk"},
		{"restore from a missing file", []string{"--storage=disk", "--data-dir=/d", "--restore-from=/no/snap.db"}, "--restore-from"},
		{"zero polling interval", []string{"--polling-interval=0s"}, "positive duration"},
		{"zero max event bytes", []string{"--max-event-bytes=0"}, "positive number"},
		{"unknown log format", []string{"--log-format=yaml"}, "--log-format"},
		{"namespaced dead-letter stream", []string{"--dead-letter-stream=ns/dead"}, "stream name"},
		{"positional argument", []string{"run"}, "flags only"},
		{"token account without a namespace", []string{"--token-service-account=controller-manager"}, "<namespace>/<name>"},
		{"token account not a name", []string{"--token-service-account=es/Manager_1"}, "--token-service-account"},
		{"lease namespace not a name", []string{"--leader-election-namespace=Eventsourcing_System"}, "not a namespace name"},
		{"renew deadline past the lease", []string{"--leader-election-lease-duration=5s", "--leader-election-renew-deadline=6s"},
			"retry period < renew deadline < lease duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseOptions(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseOptions(%v) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestNoAuthIsAllowedOnLoopbackAddresses(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8080", "[::1]:8080", "localhost:8080"} {
		if _, err := parseOptions([]string{"--ingest-auth=none", "--ingest-bind-address=" + addr}, io.Discard); err != nil {
			t.Errorf("--ingest-auth=none on %s: %v, want accepted", addr, err)
		}
	}
}

func TestAllowPrivateSinksIsOffUnlessAskedFor(t *testing.T) {
	o, err := parseOptions([]string{"--allow-private-sinks"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.allowPrivateSinks {
		t.Fatal("--allow-private-sinks did not set allowPrivateSinks")
	}
}

func TestAllowPrivateSinksReachesTheEngine(t *testing.T) {
	o, err := parseOptions([]string{"--allow-private-sinks"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	eng, _, closeEngine, err := newEngine(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := closeEngine(); err != nil {
			t.Error(err)
		}
	}()
	err = eng.ApplyReactor(t.Context(), core.ReactorSpec{
		Name: "default/rx", Streams: []string{"default/s"}, SinkURL: "http://127.0.0.1:9/events",
	})
	if errors.Is(err, core.ErrInvalidSpec) {
		t.Fatalf("a loopback sink with --allow-private-sinks: %v", err)
	}
}

func TestTokenServiceAccountNamesTheAccountOfSinkTokens(t *testing.T) {
	o, err := parseOptions([]string{"--token-service-account=es-system/controller-manager"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := newTokenSource(&rest.Config{Host: "https://127.0.0.1:1"}, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := tokens.Account(); got != (sinktoken.Account{Namespace: "es-system", Name: "controller-manager"}) {
		t.Fatalf("tokens of %s; want es-system/controller-manager", got)
	}
}
