package metrics

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Ingest is one stream's ingest series, bound to their labels. A nil
// *Ingest records nothing, so an API without metrics needs no check.
type Ingest struct {
	requests          *prometheus.CounterVec
	namespace, stream string
	// accepted is the usual answer's counter, bound at once for a stream
	// the engine has; other codes are bound on first use.
	accepted prometheus.Counter
	duration prometheus.Observer
	bytes    prometheus.Observer

	mu    sync.Mutex
	codes map[int]prometheus.Counter
	// gone is set when the stream's series are deleted: a request still
	// in flight then must not bring a code's series back.
	gone bool
}

// newIngest binds the ingest series of a stream; with known, its 202
// series too (a stream the engine does not have never answers 202, and
// shows no such series).
func (m *Metrics) newIngest(namespace, stream string, known bool) *Ingest {
	i := &Ingest{
		requests:  m.ingestRequests,
		namespace: namespace,
		stream:    stream,
		duration:  m.ingestDuration.WithLabelValues(namespace, stream),
		bytes:     m.ingestBytes.WithLabelValues(namespace, stream),
		codes:     map[int]prometheus.Counter{},
	}
	if known {
		i.accepted = m.ingestRequests.WithLabelValues(namespace, stream, strconv.Itoa(http.StatusAccepted))
	}
	return i
}

// Observe records one answered ingest request: its status code, how long
// it took, and its body's size (negative: unknown, not recorded).
func (i *Ingest) Observe(code int, took time.Duration, bodyBytes int64) {
	if i == nil {
		return
	}
	if c := i.counter(code); c != nil {
		c.Inc()
	}
	i.duration.Observe(took.Seconds())
	if bodyBytes >= 0 {
		i.bytes.Observe(float64(bodyBytes))
	}
}

// counter is code's counter; nil once the stream's series are gone.
func (i *Ingest) counter(code int) prometheus.Counter {
	if code == http.StatusAccepted && i.accepted != nil {
		return i.accepted // deleted from the vector, it no longer shows
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.gone {
		return nil
	}
	c, ok := i.codes[code]
	if !ok {
		c = i.requests.WithLabelValues(i.namespace, i.stream, strconv.Itoa(code))
		i.codes[code] = c
	}
	return c
}

// Ingest returns the ingest series of a stream by its namespace and name,
// as a request's path gives them; a stream the engine does not have
// (AddStream) gets the series with empty labels. Nil Metrics: nil.
func (m *Metrics) Ingest(namespace, stream string) *Ingest {
	if m == nil {
		return nil
	}
	if i, ok := (*m.ingest.Load())[namespace][stream]; ok {
		return i
	}
	m.unknownOnce.Do(func() { m.unknown = m.newIngest("", "", false) })
	return m.unknown
}

// AddStream binds the ingest series of stream (an engine name,
// "namespace/name"), so that requests for it are counted under its labels.
func (m *Metrics) AddStream(stream string) {
	ns, name := splitName(stream)
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.ingest.Load()
	if _, ok := old[ns][name]; ok {
		return
	}
	next := maps.Clone(old)
	byName := maps.Clone(next[ns])
	if byName == nil {
		byName = map[string]*Ingest{}
	}
	byName[name] = m.newIngest(ns, name, true)
	next[ns] = byName
	m.ingest.Store(&next)
}

// ForgetStream deletes every series of stream (an engine name): it was
// removed from the engine.
func (m *Metrics) ForgetStream(stream string) {
	ns, name := splitName(stream)
	m.mu.Lock()
	old := *m.ingest.Load()
	if i, ok := old[ns][name]; ok {
		next := maps.Clone(old)
		byName := maps.Clone(next[ns])
		delete(byName, name)
		if len(byName) == 0 {
			delete(next, ns)
		} else {
			next[ns] = byName
		}
		m.ingest.Store(&next)
		i.mu.Lock()
		i.gone = true
		i.mu.Unlock()
	}
	m.mu.Unlock()
	labels := prometheus.Labels{labelNamespace: ns, labelStream: name}
	m.ingestRequests.DeletePartialMatch(labels)
	m.ingestDuration.Delete(labels)
	m.ingestBytes.Delete(labels)
	m.streamEvents.Delete(labels)
}
