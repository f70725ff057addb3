package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// Label names, shared by the collectors and ForgetHandler so a deletion
// always matches the series it means.
const (
	labelHandler    = "handler"
	labelResult     = "result"
	labelStream     = "stream"
	labelSubscriber = "subscriber"
)

// Values of the result label of eventsourcing_handled_total.
const (
	resultSuccess      = "success"
	resultSkipped      = "skipped"
	resultError        = "error"
	resultDeadLettered = "dead_lettered"
)

// Metrics holds the handler series of the engine's Prometheus collectors:
// those the Metrics middleware records, dead letters and queue depths
// (package metrics embeds it with the rest). One Metrics serves every
// handler of an engine; it is safe for concurrent use.
type Metrics struct {
	handled      *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	deadLettered *prometheus.CounterVec
	queueDepth   *prometheus.GaugeVec
}

// NewMetrics creates the collectors and registers them with reg:
//
//	eventsourcing_handled_total{handler,result}        counter; result is success|skipped|error|dead_lettered
//	eventsourcing_handler_duration_seconds{handler}    histogram
//	eventsourcing_dead_lettered_total{handler,stream}  counter
//	eventsourcing_queue_depth{stream,subscriber}       gauge
//
// When reg already holds an identical collector (a second engine in the same
// process), that collector is reused, so both engines report into the same
// series. A nil reg registers nothing, which suits tests.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventsourcing_handled_total",
			Help: "Messages handled, by handler and result (success, skipped, error, dead_lettered).",
		}, []string{labelHandler, labelResult}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventsourcing_handler_duration_seconds",
			Help: "Time a handler took per message, in seconds.",
			// 10µs to ~10s: in-memory read models take microseconds,
			// remote ones up to seconds.
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 11),
		}, []string{labelHandler}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventsourcing_dead_lettered_total",
			Help: "Messages a handler gave up on and sent to the dead-letter stream, by origin stream.",
		}, []string{labelHandler, labelStream}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventsourcing_queue_depth",
			Help: "Messages waiting in a subscriber's queue.",
		}, []string{labelStream, labelSubscriber}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.handled, err = register(reg, m.handled); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.deadLettered, err = register(reg, m.deadLettered); err != nil {
		return nil, err
	}
	if m.queueDepth, err = register(reg, m.queueDepth); err != nil {
		return nil, err
	}
	return m, nil
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

// Middleware counts and times each message the next handler handles, under
// the handler label. The label children are resolved here, once, so the hot
// path only increments and observes. Placed inside Retry it counts attempts.
func (m *Metrics) Middleware(handler string) engine.Middleware {
	success := m.handled.WithLabelValues(handler, resultSuccess)
	skipped := m.handled.WithLabelValues(handler, resultSkipped)
	failed := m.handled.WithLabelValues(handler, resultError)
	deadLettered := m.handled.WithLabelValues(handler, resultDeadLettered)
	duration := m.duration.WithLabelValues(handler)
	return func(next engine.Handler) engine.Handler {
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			// Durations from a monotonic base: one clock read at each end,
			// where time.Now reads two clocks.
			start := time.Since(clockBase)
			out, err := next.Handle(ctx, msg)
			duration.Observe((time.Since(clockBase) - start).Seconds())
			switch {
			case err == nil:
				success.Inc()
			case errors.Is(err, engine.ErrSkip):
				skipped.Inc()
			case errors.Is(err, engine.ErrDeadLettered):
				deadLettered.Inc()
				m.deadLettered.WithLabelValues(handler, msg.Stream).Inc()
			default:
				failed.Inc()
			}
			return out, err
		})
	}
}

// clockBase anchors the monotonic clock reads of handler durations.
var clockBase = time.Now()

// RecordDeadLetter counts a message of stream that handler dead-lettered.
// The engine calls it when the dead-letter middleware sits outside Metrics
// (as it does in every route), where the middleware cannot see the outcome.
// The stream label varies per message; dead letters are rare enough to
// resolve it here.
func (m *Metrics) RecordDeadLetter(handler, stream string) {
	m.handled.WithLabelValues(handler, resultDeadLettered).Inc()
	m.deadLettered.WithLabelValues(handler, stream).Inc()
}

// ForgetHandler deletes every series of handler (its queue depths too), for when its projection is
// removed from the engine.
func (m *Metrics) ForgetHandler(handler string) {
	m.handled.DeletePartialMatch(prometheus.Labels{labelHandler: handler})
	m.duration.DeleteLabelValues(handler)
	m.deadLettered.DeletePartialMatch(prometheus.Labels{labelHandler: handler})
	m.queueDepth.DeletePartialMatch(prometheus.Labels{labelSubscriber: handler})
}

// SetQueueDepth reports n messages waiting in subscriber's queue on stream.
func (m *Metrics) SetQueueDepth(stream, subscriber string, n int) {
	m.queueDepth.WithLabelValues(stream, subscriber).Set(float64(n))
}

// DeleteQueueDepth removes the queue-depth series of a subscriber that is gone.
func (m *Metrics) DeleteQueueDepth(stream, subscriber string) {
	m.queueDepth.DeleteLabelValues(stream, subscriber)
}
