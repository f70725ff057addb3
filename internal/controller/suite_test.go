package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo and Gomega are DSLs, dot-imported as their docs do
	. "github.com/onsi/gomega"    //nolint:revive // as above
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/controller"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/k8sbinaries"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/sinktoken"
)

// finalizer is the contract: every kind carries it until the engine let go.
const finalizer = "eventsourcing.dev/engine"

var (
	testEnv *envtest.Environment
	// k8sClient talks to the API server directly (no cache), so what a test
	// reads is what the server holds.
	k8sClient client.Client
	// eng is the one real engine the suite's manager drives.
	eng *core.Engine
	// suiteConfig and suiteScheme are the API server's, for the managers
	// of a test's own (startFollower).
	suiteConfig *rest.Config
	suiteScheme *runtime.Scheme
	// sinkTokens are the engine's sink tokens: real TokenRequests for
	// managerAccount, except for the audiences a test refuses.
	sinkTokens *refusableTokens

	stopAll  context.CancelFunc
	mgrDone  = make(chan error, 1)
	engDone  = make(chan error, 1)
	suiteCtx = context.Background()
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	logHandler := slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: slog.LevelInfo})
	logf.SetLogger(logr.FromSlogHandler(logHandler))
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	SetDefaultConsistentlyDuration(2 * time.Second)

	scheme := runtime.NewScheme()
	suiteScheme = scheme
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(esv1.AddToScheme(scheme))

	testEnv = &envtest.Environment{
		Scheme:                scheme,
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: binaryAssetsDirectory(),
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred(), "start envtest (kube-apiserver and etcd)")
	Expect(cfg).NotTo(BeNil())
	suiteConfig = cfg

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	sinkTokens = newSinkTokens(cfg)
	eng, err = core.New(core.Config{
		Logger:          slog.New(logHandler),
		PollingInterval: 10 * time.Millisecond,
		StatsInterval:   100 * time.Millisecond,
		// Reactor specs deliver to test servers on loopback.
		AllowPrivateSinks: true,
		Tokens:            sinkTokens,
	})
	Expect(err).NotTo(HaveOccurred())

	mgr := newManager(cfg, scheme)

	var ctx context.Context
	ctx, stopAll = context.WithCancel(context.Background())
	go func() { engDone <- eng.Run(ctx) }()
	go func() {
		defer GinkgoRecover()
		mgrDone <- mgr.Start(ctx)
	}()
})

// newManager is a real controller-runtime manager with the four reconcilers
// wired to eng: no metrics or probe listeners, no leader election. Their
// status patches are counted in statusPatches. It leaves the objects
// labelled replicaLabel to the test's own replicas (startFollower).
func newManager(cfg *rest.Config, scheme *runtime.Scheme) ctrl.Manager {
	notReplicas, err := labels.NewRequirement(replicaLabel, selection.DoesNotExist, nil)
	Expect(err).NotTo(HaveOccurred())
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		LeaderElection:         false,
		Cache:                  cache.Options{DefaultLabelSelector: labels.NewSelector().Add(*notReplicas)},
	})
	Expect(err).NotTo(HaveOccurred())
	c := countingStatusPatches(mgr.GetClient(), statusPatches)
	Expect((&controller.StreamReconciler{
		Client:           c,
		Engine:           eng,
		DeadLetterStream: "dead",
		ConfigMaps:       mgr.GetAPIReader(),
	}).SetupWithManager(mgr)).To(Succeed())
	Expect((&controller.PipelineReconciler{Client: c, Engine: eng}).SetupWithManager(mgr)).To(Succeed())
	Expect((&controller.ProjectionReconciler{Client: c, Engine: eng}).SetupWithManager(mgr)).To(Succeed())
	Expect((&controller.ReactorReconciler{Client: c, Engine: eng, Tokens: sinkTokens}).SetupWithManager(mgr)).To(Succeed())
	return mgr
}

var _ = AfterSuite(func() {
	if stopAll != nil {
		stopAll()
		Eventually(mgrDone, 30*time.Second).Should(Receive(BeNil()), "the manager returns cleanly")
		Eventually(engDone, 30*time.Second).Should(Receive(BeNil()), "the engine returns cleanly")
	}
	if eng != nil {
		Expect(eng.Close()).To(Succeed())
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// repoRoot is the directory of go.mod above the test's working directory.
func repoRoot() string {
	dir, err := os.Getwd()
	Expect(err).NotTo(HaveOccurred())
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			Fail("no go.mod above the test's working directory")
		}
		dir = parent
	}
}

// binaryAssetsDirectory is KUBEBUILDER_ASSETS, else bin/k8s/<version> of the
// repository; it fails the suite, saying how to get them, when the
// binaries are not there.
func binaryAssetsDirectory() string {
	dir, err := k8sbinaries.AssetsDir(repoRoot())
	Expect(err).NotTo(HaveOccurred())
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			Fail(fmt.Sprintf("envtest needs %s in %s (KUBEBUILDER_ASSETS): run make k8s-binaries", bin, dir))
		}
	}
	return dir
}

// managerAccount is the ServiceAccount whose tokens sinks receive.
var managerAccount = sinktoken.Account{Namespace: "es-system", Name: "controller-manager"}

// refusableTokens is a sinktoken.Source whose tokens a test can refuse,
// per audience, as an API server refusing the TokenRequest would.
type refusableTokens struct {
	*sinktoken.Source
	refused sync.Map // audience -> error
}

func (r *refusableTokens) Token(ctx context.Context, audience string) (string, error) {
	if err, ok := r.refused.Load(audience); ok {
		return "", err.(error)
	}
	return r.Source.Token(ctx, audience)
}

// newSinkTokens creates managerAccount and returns a source of its tokens,
// requested from the API server at cfg.
func newSinkTokens(cfg *rest.Config) *refusableTokens {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerAccount.Namespace}}
	Expect(k8sClient.Create(suiteCtx, ns)).To(Succeed())
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: managerAccount.Namespace, Name: managerAccount.Name}}
	Expect(k8sClient.Create(suiteCtx, sa)).To(Succeed())
	accounts, err := typedcorev1.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	src, err := sinktoken.New(sinktoken.Config{Client: accounts, Account: managerAccount})
	Expect(err).NotTo(HaveOccurred())
	return &refusableTokens{Source: src}
}

// newNamespace creates a namespace of its own for one test: namespaces never
// finish deleting in envtest (no namespace controller), so none is reused.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	Expect(k8sClient.Create(suiteCtx, ns)).To(Succeed())
	return ns.Name
}

// engineName is the engine-wide name of a namespaced object.
func engineName(namespace, name string) string { return namespace + "/" + name }

// conditions returns the status conditions of one of our kinds.
func conditions(obj client.Object) []metav1.Condition {
	switch o := obj.(type) {
	case *esv1.Stream:
		return o.Status.Conditions
	case *esv1.Pipeline:
		return o.Status.Conditions
	case *esv1.Projection:
		return o.Status.Conditions
	case *esv1.Reactor:
		return o.Status.Conditions
	}
	Fail(fmt.Sprintf("no conditions on %T", obj))
	return nil
}

// eventuallyReady waits until obj, re-read into obj, reports Ready with the
// given status and reason for its current generation, and returns that
// condition.
func eventuallyReady(obj client.Object, status metav1.ConditionStatus, reason string) metav1.Condition {
	GinkgoHelper()
	var got metav1.Condition
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		c := meta.FindStatusCondition(conditions(obj), controller.ConditionReady)
		g.Expect(c).NotTo(BeNil(), "%T %s has no Ready condition yet", obj, obj.GetName())
		g.Expect(c.ObservedGeneration).To(Equal(obj.GetGeneration()),
			"Ready describes generation %d, want the current %d", c.ObservedGeneration, obj.GetGeneration())
		g.Expect(c.Status).To(Equal(status), "Ready status (reason %s: %s)", c.Reason, c.Message)
		g.Expect(c.Reason).To(Equal(reason), "Ready reason (message: %s)", c.Message)
		got = *c
	}).Should(Succeed())
	return got
}

// create creates obj through the API server.
func create(obj client.Object) {
	GinkgoHelper()
	Expect(k8sClient.Create(suiteCtx, obj)).To(Succeed(), "create %T %s", obj, obj.GetName())
}

// expectDeletedWithFinalizer checks obj carries the engine finalizer, deletes
// it, and waits until it is gone from the API server.
func expectDeletedWithFinalizer(obj client.Object) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		g.Expect(obj.GetFinalizers()).To(ContainElement(finalizer))
	}).Should(Succeed())
	Expect(k8sClient.Delete(suiteCtx, obj)).To(Succeed())
	Eventually(func() error {
		return k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(obj), obj)
	}).Should(Satisfy(apierrors.IsNotFound), "%T %s is still there after delete", obj, obj.GetName())
}

// ingestJSON puts JSON events, named name, into a stream through the engine.
func ingestJSON(namespace, stream, name string, payloads ...string) {
	GinkgoHelper()
	events := make([]core.Event, len(payloads))
	for i, p := range payloads {
		events[i] = core.Event{Name: name, ContentType: "application/json", Payload: []byte(p)}
	}
	_, err := eng.Ingest(suiteCtx, engineName(namespace, stream), events)
	Expect(err).NotTo(HaveOccurred(), "ingest into %s/%s", namespace, stream)
}

// readModel returns a projection's read model as JSON, for MatchJSON.
func readModel(namespace, projection string) (string, error) {
	doc, err := eng.Query(suiteCtx, engineName(namespace, projection))
	if err != nil {
		return "", err
	}
	if !json.Valid(doc) {
		return "", fmt.Errorf("read model is not JSON: %s", doc)
	}
	return string(doc), nil
}

// jsonStream is a Stream of JSON events named ItemCreated by default.
func jsonStream(namespace, name string) *esv1.Stream {
	return &esv1.Stream{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       esv1.StreamSpec{DefaultEventName: "ItemCreated"},
	}
}

// appendProjection is the classic example: an Append read model under the
// fixed key items.
func appendProjection(namespace, name string, streams ...string) *esv1.Projection {
	return &esv1.Projection{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: esv1.ProjectionSpec{
			Streams:   streams,
			ReadModel: esv1.ReadModel{Type: esv1.ReadModelAppend, Key: "items"},
		},
	}
}
