// Package metrics owns the engine's Prometheus collectors (docs/monitoring.md
// lists them): the handler series of the Metrics middleware, and those of
// ingest, the outbox, the processor, durable storage, the event store and
// each projection's and reactor's progress.
//
// Label values are the names of streams, projections and reactors and HTTP
// status codes, never event ids or keys, so the number of series is bounded
// by the objects applied. The hot paths (an ingest request, a handled event,
// a commit) use children bound to their labels once, when the stream or
// handler is applied.
package metrics

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/middleware"
)

// Label names, shared by the collectors and the Forget methods so a deletion
// always matches the series it means.
const (
	labelNamespace = "namespace"
	labelStream    = "stream"
	labelCode      = "code"
	labelHandler   = "handler"
	labelStore     = "store"
)

// Values of the store label of the storage series.
const (
	// StoreData is the data file (events, read models, checkpoints).
	StoreData = "data"
	// StoreOutbox is the outbox log.
	StoreOutbox = "outbox"
	// StoreEvents is JetStream's event streams (--storage=nats): one group
	// of appends to a stream, published and acknowledged.
	StoreEvents = "events"
	// StoreReadModels is JetStream's read-model stream (--storage=nats):
	// one batch of read-model changes and its checkpoint.
	StoreReadModels = "readmodels"
)

// Metrics is every collector of one engine. It is safe for concurrent use.
// The embedded middleware.Metrics serves the Metrics middleware and the
// handler series it owns.
type Metrics struct {
	*middleware.Metrics

	ingestRequests *prometheus.CounterVec
	ingestDuration *prometheus.HistogramVec
	ingestBytes    *prometheus.HistogramVec

	outboxDepth prometheus.Gauge
	outboxAge   prometheus.Gauge

	batchSize     prometheus.Histogram
	batchDuration prometheus.Histogram

	commitDuration *prometheus.HistogramVec
	fsyncDuration  *prometheus.HistogramVec

	streamEvents *prometheus.GaugeVec

	lag      *prometheus.GaugeVec
	retries  *prometheus.CounterVec
	delivery *prometheus.HistogramVec

	// ingest maps namespace, then stream, to the stream's bound ingest
	// series. It is replaced, never changed in place, so a request reads it
	// without a lock and without building the engine name; mu serialises
	// the replacements.
	ingest atomic.Pointer[map[string]map[string]*Ingest]
	mu     sync.Mutex
	// unknown counts requests for streams that do not exist, under empty
	// namespace and stream labels: those names come from the URL, and
	// labelling by them would let any client add series. Bound on first
	// use, so that a manager that never saw one shows none.
	unknown     *Ingest
	unknownOnce sync.Once
}

// New creates the collectors and registers them with reg. When reg already
// holds an identical collector (a second engine in the same process), that
// collector is reused, so both engines report into the same series. A nil
// reg registers nothing, which suits tests.
func New(reg prometheus.Registerer) (*Metrics, error) {
	handlers, err := middleware.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &Metrics{
		Metrics: handlers,
		ingestRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventsourcing_ingest_requests_total",
			Help: "Ingest requests answered, by namespace, stream and HTTP status code.",
		}, []string{labelNamespace, labelStream, labelCode}),
		ingestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventsourcing_ingest_duration_seconds",
			Help: "Time to answer an ingest request, in seconds.",
			// 100µs to ~6.5s: a memory outbox answers in microseconds, a
			// durable one after an fsync, a full one after up to its wait.
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}, []string{labelNamespace, labelStream}),
		ingestBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventsourcing_ingest_request_bytes",
			Help: "Size of ingest request bodies, in bytes.",
			// 64 B to 16 MiB, the default bound of a batch request.
			Buckets: prometheus.ExponentialBuckets(64, 4, 10),
		}, []string{labelNamespace, labelStream}),
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventsourcing_outbox_depth",
			Help: "Accepted events waiting in the outbox to be stored and published.",
		}),
		outboxAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventsourcing_outbox_oldest_age_seconds",
			Help: "Age of the oldest event waiting in the outbox, in seconds (0 when it is empty).",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eventsourcing_processor_batch_size",
			Help:    "Outbox entries the processor took in one batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7), // 1 to 4096
		}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eventsourcing_processor_commit_duration_seconds",
			Help:    "Time the processor took to store, publish and mark one batch dispatched, in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10), // 50µs to ~13s
		}),
		commitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventsourcing_storage_commit_duration_seconds",
			Help:    "Time one group commit of durable storage took (write and sync), in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10),
		}, []string{labelStore}),
		fsyncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventsourcing_storage_fsync_duration_seconds",
			Help:    "Time the sync of one group commit of durable storage took, in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10),
		}, []string{labelStore}),
		streamEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventsourcing_stream_events",
			Help: "Events a stream holds in the event store (after retention).",
		}, []string{labelNamespace, labelStream}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventsourcing_handler_lag",
			Help: "Events in a projection's or reactor's streams it has not settled yet.",
		}, []string{labelHandler}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventsourcing_retries_total",
			Help: "Attempts the Retry middleware made after a failure, by handler.",
		}, []string{labelHandler}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventsourcing_delivery_duration_seconds",
			Help: "Round trip of one delivery attempt of a reactor to its sink, in seconds.",
			// 500µs to ~33s: a sink's answer, up to the longest timeout.
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{labelHandler}),
	}
	if reg != nil {
		if err := m.register(reg); err != nil {
			return nil, err
		}
	}
	m.ingest.Store(&map[string]map[string]*Ingest{})
	return m, nil
}

func (m *Metrics) register(reg prometheus.Registerer) error {
	var errs []error
	registerInto(reg, &m.ingestRequests, &errs)
	registerInto(reg, &m.ingestDuration, &errs)
	registerInto(reg, &m.ingestBytes, &errs)
	registerInto(reg, &m.outboxDepth, &errs)
	registerInto(reg, &m.outboxAge, &errs)
	registerInto(reg, &m.batchSize, &errs)
	registerInto(reg, &m.batchDuration, &errs)
	registerInto(reg, &m.commitDuration, &errs)
	registerInto(reg, &m.fsyncDuration, &errs)
	registerInto(reg, &m.streamEvents, &errs)
	registerInto(reg, &m.lag, &errs)
	registerInto(reg, &m.retries, &errs)
	registerInto(reg, &m.delivery, &errs)
	return errors.Join(errs...)
}

// registerInto registers *c, or replaces it with the identical collector
// reg already holds; a failure is added to errs.
func registerInto[C prometheus.Collector](reg prometheus.Registerer, c *C, errs *[]error) {
	got, err := register(reg, *c)
	if err != nil {
		*errs = append(*errs, err)
		return
	}
	*c = got
}

// register registers c, or returns the identical collector reg already holds.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
		return c, fmt.Errorf("register metrics: a collector of another type is registered under the same name: %w", err)
	}
	return c, fmt.Errorf("register metrics: %w", err)
}

// splitName splits an engine name ("namespace/name") into its labels; a
// name without a namespace has an empty one.
func splitName(name string) (namespace, short string) {
	if ns, n, ok := strings.Cut(name, "/"); ok {
		return ns, n
	}
	return "", name
}

// SetOutbox reports the outbox's pending entries and the age of the oldest.
func (m *Metrics) SetOutbox(depth int, oldest time.Duration) {
	m.outboxDepth.Set(float64(depth))
	m.outboxAge.Set(oldest.Seconds())
}

// ObserveBatch records one batch of the outbox processor: its entries and
// how long storing, publishing and marking it took.
func (m *Metrics) ObserveBatch(entries int, took time.Duration) {
	m.batchSize.Observe(float64(entries))
	m.batchDuration.Observe(took.Seconds())
}

// Commits returns what durable storage calls after each group commit of
// store (StoreData, StoreOutbox): how long the write and the sync took;
// a sync of zero is a storage whose write syncs itself (bbolt), which has
// no fsync series.
func (m *Metrics) Commits(store string) func(writes int, write, synced time.Duration) {
	commit := m.commitDuration.WithLabelValues(store)
	fsync := m.fsyncDuration.WithLabelValues(store)
	return func(_ int, write, synced time.Duration) {
		commit.Observe((write + synced).Seconds())
		if synced > 0 {
			fsync.Observe(synced.Seconds())
		}
	}
}

// RemoteCommits is the function a store whose servers write and sync
// (JetStream) calls with each commit it saw acknowledged: only the
// commit series, no fsync of ours to time.
func (m *Metrics) RemoteCommits(store string) func(writes int, took time.Duration) {
	commit := m.commitDuration.WithLabelValues(store)
	return func(_ int, took time.Duration) { commit.Observe(took.Seconds()) }
}

// SetStreamEvents reports the events stream (an engine name) holds.
func (m *Metrics) SetStreamEvents(stream string, n uint64) {
	ns, name := splitName(stream)
	m.streamEvents.WithLabelValues(ns, name).Set(float64(n))
}

// SetLag reports the events handler has not settled yet.
func (m *Metrics) SetLag(handler string, n uint64) {
	m.lag.WithLabelValues(handler).Set(float64(n))
}

// Retried returns what the Retry middleware of handler calls before each
// attempt after the first.
func (m *Metrics) Retried(handler string) func() {
	return m.retries.WithLabelValues(handler).Inc
}

// Delivery returns the observer of handler's sink round trips, in seconds.
func (m *Metrics) Delivery(handler string) prometheus.Observer {
	return m.delivery.WithLabelValues(handler)
}

// ForgetHandler deletes every series of handler (a projection, a reactor or
// a rebuild that ended), its middleware series too.
func (m *Metrics) ForgetHandler(handler string) {
	m.Metrics.ForgetHandler(handler)
	m.lag.DeleteLabelValues(handler)
	m.retries.DeleteLabelValues(handler)
	m.delivery.DeleteLabelValues(handler)
}
