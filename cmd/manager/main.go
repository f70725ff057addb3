// Command manager runs the eventsourcing operator: the controllers that turn
// Streams, Pipelines and Projections into the in-process engine, and the
// engine itself. This file holds flags and wiring only.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/console"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/controller"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/boltstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/disk"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/metrics"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/httpapi"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/sinktoken"
)

var setupLog = ctrl.Log.WithName("setup")

func main() {
	opts, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts.zap)))
	tuneGC(opts.storage)
	if err := run(ctrl.SetupSignalHandler(), opts); err != nil {
		setupLog.Error(err, "manager stopped")
		os.Exit(1)
	}
}

// run wires the manager and blocks until ctx ends (SIGTERM or SIGINT) and
// everything has drained.
func run(ctx context.Context, opts options) error {
	stopTracing, err := setupTracing(ctx)
	if err != nil {
		return err
	}
	defer stopTracing() // last: the engine's final spans are exported
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(esv1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("find the cluster (set KUBECONFIG or run in a pod): %w", err)
	}
	tokens, err := newTokenSource(cfg, opts)
	if err != nil {
		return err
	}
	eng, db, closeEngine, err := newEngine(opts, tokens)
	if err != nil {
		return err
	}
	// After mgr.Start has returned: the HTTP API and the engine have
	// stopped, so nothing writes to the storage any more.
	defer func() {
		if err := closeEngine(); err != nil {
			setupLog.Error(err, "closing the engine's storage")
		}
	}()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsOptions(opts),
		HealthProbeBindAddress:        opts.probeAddr,
		LeaderElection:                opts.leaderElect,
		LeaderElectionID:              opts.leaderElectionID,
		LeaderElectionNamespace:       opts.leaderElectNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &opts.leaseDuration,
		RenewDeadline:                 &opts.renewDeadline,
		RetryPeriod:                   &opts.retryPeriod,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.Add(engineRunnable{eng}); err != nil {
		return fmt.Errorf("add engine: %w", err)
	}
	if err := setupControllers(mgr, eng, tokens, opts); err != nil {
		return err
	}
	api, err := newAPIServer(cfg, eng, opts, controller.StatusFigures{Reader: mgr.GetClient()})
	if err != nil {
		return err
	}
	if err := mgr.Add(api); err != nil {
		return fmt.Errorf("add the HTTP API: %w", err)
	}
	if db != nil {
		if err := addBackupEndpoint(mgr, db, opts); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddHealthzCheck("storage", func(*http.Request) error { return eng.Healthy() }); err != nil {
		return fmt.Errorf("add storage health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("engine", func(*http.Request) error { return eng.Ready() }); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}
	if err := mgr.AddReadyzCheck("api", api.Ready); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}
	setupLog.Info("starting manager", "ingestAddress", opts.ingestAddr, "storage", opts.storage)
	return mgr.Start(ctx)
}

// setupControllers registers the four reconcilers, all driving eng; tokens
// (nil when there are none) is the engine's, which the Reactor controller
// checks to report a token it cannot get.
func setupControllers(mgr ctrl.Manager, eng *core.Engine, tokens *sinktoken.Source, opts options) error {
	c := mgr.GetClient()
	// On shared storage every replica's engine must know every object, to
	// take events and answer queries: the controllers run on every replica
	// and only the leader writes to the API server (docs/architecture.md).
	var lead *controller.Leadership
	if opts.storage == storageNATS {
		lead = &controller.Leadership{Elected: mgr.Elected()}
	}
	if err := (&controller.StreamReconciler{
		Client: c, Engine: eng, DeadLetterStream: opts.deadLetterStream, ConfigMaps: mgr.GetAPIReader(), Leadership: lead,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the Stream controller: %w", err)
	}
	if err := (&controller.PipelineReconciler{Client: c, Engine: eng, Leadership: lead}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the Pipeline controller: %w", err)
	}
	if err := (&controller.ProjectionReconciler{Client: c, Engine: eng, Leadership: lead}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the Projection controller: %w", err)
	}
	rx := &controller.ReactorReconciler{Client: c, Engine: eng, Leadership: lead}
	if tokens != nil {
		rx.Tokens = tokens
	}
	if err := rx.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the Reactor controller: %w", err)
	}
	return nil
}

// newAPIServer builds the HTTP API on --ingest-bind-address, its callers
// checked as --ingest-auth says. It stops before the engine does, so
// requests in flight reach the outbox before it drains (see
// httpapi.Server.NeedLeaderElection). A replica that does not lead lists
// the leader's counters from figures.
func newAPIServer(cfg *rest.Config, eng *core.Engine, opts options, figures httpapi.LeaderFigures) (*httpapi.Server, error) {
	log := ctrl.Log.WithName("httpapi")
	var guard httpapi.Guard = httpapi.AllowAll{}
	if opts.ingestAuth == authKubernetes {
		g, err := httpapi.NewKubernetesGuard(cfg, log)
		if err != nil {
			return nil, fmt.Errorf("set up --ingest-auth=kubernetes: %w", err)
		}
		guard = g
	}
	h, err := httpapi.NewHandler(httpapi.Config{
		Engine:          eng,
		Guard:           guard,
		MaxEventBytes:   opts.maxEventBytes,
		MaxRequestBytes: opts.maxRequestBytes,
		Metrics:         eng.Metrics(),
		Log:             log,
		LeaderFigures:   figures,
	})
	if err != nil {
		return nil, err
	}
	// The web console (docs/console.md) beside the API: its files are
	// public, everything it shows comes through the API's guard.
	con, err := console.NewHandler()
	if err != nil {
		return nil, err
	}
	return &httpapi.Server{Addr: opts.ingestAddr, Handler: con.WithAPI(h), Log: log}, nil
}

// newTokenSource gives the tokens Reactors with spec.sink.audience send:
// of the ServiceAccount --token-service-account names, or else of the
// manager pod's own. Outside a pod and without the flag it is nil, and the
// engine refuses such Reactors, naming the flag.
func newTokenSource(cfg *rest.Config, opts options) (*sinktoken.Source, error) {
	acct, err := tokenAccount(opts)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			setupLog.Error(err, "set --token-service-account to send tokens to sinks")
		}
		setupLog.Info("no ServiceAccount for sink tokens: Reactors with spec.sink.audience are refused " +
			"until the manager runs in a pod or with --token-service-account")
		return nil, nil
	}
	client, err := typedcorev1.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("set up TokenRequests: %w", err)
	}
	setupLog.Info("sink tokens", "serviceAccount", acct.String())
	return sinktoken.New(sinktoken.Config{Client: client, Account: acct})
}

// tokenAccount is the ServiceAccount of sink tokens: the one
// --token-service-account names (checked by parseOptions), or else the
// pod's own.
func tokenAccount(opts options) (sinktoken.Account, error) {
	if opts.tokenAccount != "" {
		return sinktoken.ParseAccount(opts.tokenAccount)
	}
	return sinktoken.PodAccount(sinktoken.PodTokenFile)
}

// newEngine builds the engine from the flags, on the storage --storage
// names, with its metrics in the manager's registry (served on the metrics
// endpoint), sending tokens (nil: none) to sinks that name an audience. db
// is the data file with disk storage, nil with memory; the returned
// function closes the engine and its storage.
func newEngine(opts options, tokens *sinktoken.Source) (*core.Engine, *boltstore.DB, func() error, error) {
	level := slog.LevelInfo
	if opts.zap.Level != nil && opts.zap.Level.Enabled(zapcore.DebugLevel) {
		level = slog.LevelDebug // --zap-log-level=debug shows pipelines' per-event lines too
	}
	logger, err := core.NewLogger(os.Stderr, opts.logFormat, level)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := metrics.New(ctrlmetrics.Registry)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("register engine metrics: %w", err)
	}
	cfg := core.Config{
		Metrics:          m,
		Logger:           logger,
		DeadLetterStream: opts.deadLetterStream,
		PollingInterval:  opts.pollingInterval,
		// A sink on loopback or link-local would let whoever creates a
		// Reactor make the manager post to the node's or cloud's internals.
		AllowPrivateSinks: opts.allowPrivateSinks,
	}
	if tokens != nil {
		cfg.Tokens = tokens
	}
	closeStorage := func() error { return nil }
	var db *boltstore.DB
	switch opts.storage {
	case storageMemory:
	case storageDisk:
		if err := restoreIfEmpty(opts); err != nil {
			return nil, nil, nil, err
		}
		st, err := disk.Open(opts.dataDir, disk.Options{
			ObserveDataCommit:   m.Commits(metrics.StoreData),
			ObserveOutboxCommit: m.Commits(metrics.StoreOutbox),
		})
		if err != nil {
			return nil, nil, nil, err
		}
		db = st.DB
		cfg.Store, cfg.Outbox, cfg.ReadModels = st.Store, st.Outbox, st.ReadModels
		cfg.BatchDelay = disk.ProcessorBatchDelay
		closeStorage = st.Close
		setupLog.Info("durable storage", "file", st.DB.Path(), "outboxLog", st.Outbox.Dir(), "outboxPending", st.Outbox.Len())
		if r := st.Outbox.Recovered(); r != "" {
			setupLog.Info("outbox log recovered from an interrupted write: " + r)
		}
	case storageNATS:
		closeNATS, err := openNATS(&cfg, opts, m)
		if err != nil {
			return nil, nil, nil, err
		}
		closeStorage = closeNATS
	default:
		return nil, nil, nil, fmt.Errorf("--storage=%s: this manager cannot open that storage", opts.storage)
	}
	eng, err := core.New(cfg)
	if err != nil {
		return nil, nil, nil, errors.Join(err, closeStorage())
	}
	return eng, db, func() error { return errors.Join(eng.Close(), closeStorage()) }, nil
}

// metricsOptions is the scaffold's metrics server: HTTPS with authn/authz
// by default, HTTP/2 off unless asked for (CVE-2023-44487, CVE-2023-39325).
func metricsOptions(opts options) metricsserver.Options {
	var tlsOpts []func(*tls.Config)
	if !opts.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	m := metricsserver.Options{
		BindAddress:   opts.metricsAddr,
		SecureServing: opts.metricsSecure,
		TLSOpts:       tlsOpts,
	}
	if opts.metricsSecure {
		m.FilterProvider = metricsAuth
	}
	return m
}

// metricsAuth is the metrics endpoint's FilterProvider: callers of /metrics
// and /backup need a bearer token the API server accepts and RBAC's get on
// the path, checked by the HTTP API's guard. controller-runtime's
// filters.WithAuthenticationAndAuthorization checks the same, but answers a
// token the API server refuses with 500: the guard answers 401.
func metricsAuth(cfg *rest.Config, _ *http.Client) (metricsserver.Filter, error) {
	guard, err := httpapi.NewKubernetesGuard(cfg, ctrl.Log.WithName("metrics-auth"))
	if err != nil {
		return nil, fmt.Errorf("set up the metrics endpoint's authentication: %w", err)
	}
	return func(_ logr.Logger, next http.Handler) (http.Handler, error) {
		return guard.ProtectPaths(next), nil
	}, nil
}

// engineRunnable runs the engine's outbox processor, projections and
// retention as a manager Runnable, on the leader only: two processes
// dispatching would each publish every event. The HTTP API is a runnable of
// its own (newAPIServer).
type engineRunnable struct{ engine *core.Engine }

func (r engineRunnable) Start(ctx context.Context) error { return r.engine.Run(ctx) }

func (engineRunnable) NeedLeaderElection() bool { return true }
