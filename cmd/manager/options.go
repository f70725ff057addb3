package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/natsstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/sinktoken"
)

// Values of --ingest-auth and --storage.
const (
	authKubernetes = "kubernetes"
	authNone       = "none"
	storageMemory  = "memory"
	storageDisk    = "disk"
	storageNATS    = "nats"
)

// options are the manager's flags: the kubebuilder scaffold's plus the
// engine's (docs/manager-flags.md).
type options struct {
	metricsAddr          string
	metricsSecure        bool
	enableHTTP2          bool
	probeAddr            string
	leaderElect          bool
	ingestAddr           string
	ingestAuth           string
	storage              string
	dataDir              string
	restoreFrom          string
	deadLetterStream     string
	pollingInterval      time.Duration
	maxEventBytes        int64
	maxRequestBytes      int64
	logFormat            string
	zap                  zap.Options
	leaderElectionID     string
	leaderElectNamespace string
	leaseDuration        time.Duration
	renewDeadline        time.Duration
	retryPeriod          time.Duration
	allowPrivateSinks    bool
	tokenAccount         string
	natsURL              string
	natsCreds            string
	natsCA               string
	natsReplicas         int
	// natsFlagsSet names the --nats-* flags given, which only
	// --storage=nats uses.
	natsFlagsSet []string
}

// parseOptions reads the flags in args (without the program name). Unknown
// flags, bad values and flags that contradict each other are errors that say
// which flag to change.
func parseOptions(args []string, output io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", "0",
		"The address the metrics endpoint binds to. Use :8443 for HTTPS or :8080 for HTTP, or leave it as 0 to disable the metrics service.")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true,
		"If set, the metrics endpoint is served securely via HTTPS. Use --metrics-secure=false to use HTTP instead.")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false,
		"If set, HTTP/2 will be enabled for the metrics server.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false,
		"Enable leader election for controller manager. Enabling this will ensure there is only one active controller manager.")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", "eventsourcing-operator.eventsourcing.dev",
		"The name of the Lease the replicas compete for.")
	fs.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 15*time.Second,
		"How long a replica waits, after the leader stopped renewing the Lease, before it takes over.")
	fs.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 10*time.Second,
		"How long the leader keeps trying to renew the Lease before it steps down (less than the lease duration).")
	fs.DurationVar(&o.retryPeriod, "leader-election-retry-period", 2*time.Second,
		"How often replicas try to take or renew the Lease.")
	fs.StringVar(&o.leaderElectNamespace, "leader-election-namespace", "",
		"The namespace of the leader-election Lease (default: the manager's own namespace).")
	fs.StringVar(&o.ingestAddr, "ingest-bind-address", ":8080", "The address the HTTP API (ingest, stream reads, queries) binds to.")
	fs.StringVar(&o.ingestAuth, "ingest-auth", authKubernetes,
		"How the HTTP API checks callers: kubernetes (TokenReview + SubjectAccessReview) or none (loopback addresses only).")
	fs.StringVar(&o.storage, "storage", storageMemory,
		"Where events, outbox and read models live: memory (lost on restart), disk (an outbox log and one data file "+
			"in --data-dir; a 202 only after the fdatasync that covers the event) or nats (NATS JetStream at --nats-url, "+
			"shared by several replicas; a 202 after JetStream's acknowledgement).")
	fs.StringVar(&o.dataDir, "data-dir", "", "The directory of durable storage (with --storage=disk).")
	fs.StringVar(&o.restoreFrom, "restore-from", "",
		"A snapshot (from GET /backup on the metrics endpoint) to restore into an empty --data-dir at start; ignored once the data file exists.")
	fs.StringVar(&o.natsURL, "nats-url", natsstore.DefaultURL,
		"With --storage=nats: the NATS server, or a comma-separated list of the cluster's servers (tls:// for TLS).")
	fs.StringVar(&o.natsCreds, "nats-creds", "", "With --storage=nats: a NATS credentials file (user JWT and NKey seed).")
	fs.StringVar(&o.natsCA, "nats-ca", "",
		"With --storage=nats and tls:// URLs: a PEM file of the CAs that sign the servers' certificates (default: the system's).")
	fs.IntVar(&o.natsReplicas, "nats-replicas", 1,
		"With --storage=nats: the JetStream replication factor of every stream and bucket the manager creates, 1 to 5 "+
			"(3 for a cluster of three).")
	fs.StringVar(&o.deadLetterStream, "dead-letter-stream", "dead",
		"The stream, in each namespace, that receives events that fail for good, unless a Stream names its own.")
	fs.DurationVar(&o.pollingInterval, "polling-interval", 100*time.Millisecond,
		"How often the outbox processor looks for work when no enqueue woke it (a safety net).")
	fs.Int64Var(&o.maxEventBytes, "max-event-bytes", httpapi.DefaultMaxEventBytes,
		"The largest event the HTTP API accepts, in bytes: a single event's body, or one event of a batch.")
	fs.Int64Var(&o.maxRequestBytes, "max-request-bytes", httpapi.DefaultMaxRequestBytes,
		"The largest batch request body (NDJSON, CloudEvents batch) the HTTP API accepts, in bytes.")
	fs.BoolVar(&o.allowPrivateSinks, "allow-private-sinks", false,
		"Let Reactors deliver to loopback and link-local addresses (such as 127.0.0.1 or the cloud metadata service "+
			"169.254.169.254): for tests and local use only.")
	fs.StringVar(&o.tokenAccount, "token-service-account", "",
		"The ServiceAccount, as <namespace>/<name>, whose tokens Reactors with spec.sink.audience send (TokenRequest). "+
			"Default: the manager pod's own; outside a pod, without it, such Reactors are refused.")
	fs.StringVar(&o.logFormat, "log-format", core.LogFormatText, "The format of the engine's logs: text or json.")
	o.zap = zap.Options{Development: false}
	o.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q: the manager takes flags only", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "nats-") {
			o.natsFlagsSet = append(o.natsFlagsSet, "--"+f.Name)
		}
	})
	return o, o.validate()
}

// validate reports the first flag whose value is refused, or which
// contradicts another.
func (o options) validate() error {
	switch o.ingestAuth {
	case authKubernetes:
	case authNone:
		if !loopback(o.ingestAddr) {
			return fmt.Errorf("--ingest-auth=none lets anyone who can reach %q write and read events: "+
				"use it only with a loopback --ingest-bind-address such as 127.0.0.1:8080, or use --ingest-auth=kubernetes", o.ingestAddr)
		}
	default:
		return fmt.Errorf("--ingest-auth=%q: want %s or %s", o.ingestAuth, authKubernetes, authNone)
	}
	if err := o.validateStorage(); err != nil {
		return err
	}
	if err := o.validateLeaderElection(); err != nil {
		return err
	}
	if o.pollingInterval <= 0 {
		return fmt.Errorf("--polling-interval=%s: want a positive duration such as 100ms", o.pollingInterval)
	}
	if o.maxEventBytes <= 0 {
		return fmt.Errorf("--max-event-bytes=%d: want a positive number of bytes", o.maxEventBytes)
	}
	if o.maxRequestBytes < o.maxEventBytes {
		return fmt.Errorf("--max-request-bytes=%d is less than --max-event-bytes=%d: a batch must hold at least one event",
			o.maxRequestBytes, o.maxEventBytes)
	}
	if o.deadLetterStream == "" || strings.Contains(o.deadLetterStream, "/") {
		return fmt.Errorf("--dead-letter-stream=%q: want a stream name such as dead", o.deadLetterStream)
	}
	if o.tokenAccount != "" {
		if _, err := sinktoken.ParseAccount(o.tokenAccount); err != nil {
			return fmt.Errorf("--token-service-account: %w", err)
		}
	}
	if _, err := core.NewLogger(io.Discard, o.logFormat, slog.LevelInfo); err != nil {
		return fmt.Errorf("--log-format: %w", err)
	}
	return nil
}

// validateStorage checks --storage and the flags that only one backend
// uses.
func (o options) validateStorage() error {
	switch o.storage {
	case storageMemory, storageDisk, storageNATS:
	default:
		return fmt.Errorf("--storage=%q: want %s, %s or %s", o.storage, storageMemory, storageDisk, storageNATS)
	}
	if o.storage != storageNATS && len(o.natsFlagsSet) > 0 {
		return fmt.Errorf("%s: only used with --storage=nats: drop the --nats-* flags, or set --storage=nats", strings.Join(o.natsFlagsSet, ", "))
	}
	if o.storage != storageDisk && (o.dataDir != "" || o.restoreFrom != "") {
		return fmt.Errorf("--data-dir and --restore-from are only used with --storage=disk (not %s): drop them, or set --storage=disk",
			o.storage)
	}
	switch o.storage {
	case storageDisk:
		if o.dataDir == "" {
			return errors.New("--storage=disk needs --data-dir, the directory of the data file (a PersistentVolume in a cluster)")
		}
		if o.restoreFrom != "" {
			if _, err := os.Stat(o.restoreFrom); err != nil {
				return fmt.Errorf("--restore-from: %w", err)
			}
		}
	case storageNATS:
		return o.validateNATS()
	}
	return nil
}

// inClusterNamespaceFile is where a pod finds its namespace, the default of
// --leader-election-namespace (controller-runtime reads the same file).
var inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// validateLeaderElection checks that the Lease has a namespace: the flag's,
// or the pod's own, which a manager outside a cluster has not.
func (o options) validateLeaderElection() error {
	if o.retryPeriod <= 0 || o.renewDeadline <= o.retryPeriod || o.leaseDuration <= o.renewDeadline {
		return fmt.Errorf("--leader-election-retry-period=%s, --leader-election-renew-deadline=%s, --leader-election-lease-duration=%s: "+
			"want 0 < retry period < renew deadline < lease duration", o.retryPeriod, o.renewDeadline, o.leaseDuration)
	}
	if o.leaderElectNamespace != "" {
		if errs := validation.IsDNS1123Label(o.leaderElectNamespace); len(errs) > 0 {
			return fmt.Errorf("--leader-election-namespace=%q: not a namespace name: %s", o.leaderElectNamespace, strings.Join(errs, "; "))
		}
		return nil
	}
	if !o.leaderElect {
		return nil
	}
	if _, err := os.Stat(inClusterNamespaceFile); err != nil {
		return fmt.Errorf("--leader-elect outside a cluster needs --leader-election-namespace, the namespace of the Lease "+
			"the replicas compete for (in a pod it defaults to the pod's own; %s: %w)", inClusterNamespaceFile, err)
	}
	return nil
}

// loopback reports whether addr (host:port) names only loopback interfaces.
// An empty host (":8080") listens on every interface, so it is not.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
