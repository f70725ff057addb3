package reactor

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/tracing"
)

func TestClassifyRetriesServerErrorsTimeoutsAndThrottlingOnly(t *testing.T) {
	for _, tt := range []struct {
		status    int
		permanent bool
	}{
		{200, false}, {204, false}, {500, false}, {503, false}, {408, false}, {429, false},
		{400, true}, {401, true}, {404, true}, {422, true}, {301, true},
	} {
		err := classify(tt.status, http.Header{}, nil)
		if tt.status/100 == 2 {
			if err != nil {
				t.Errorf("%d: got %v, want success", tt.status, err)
			}
			continue
		}
		if err == nil || engine.IsPermanent(err) != tt.permanent {
			t.Errorf("%d: got %v (permanent %v), want permanent %v", tt.status, err, engine.IsPermanent(err), tt.permanent)
		}
	}
}

func TestClassifyKeepsRetryAfter(t *testing.T) {
	err := classify(429, http.Header{"Retry-After": {"3"}}, []byte("slow down"))
	if d, ok := engine.RetryDelay(err); !ok || d != 3*time.Second {
		t.Fatalf("got %v, %v; want 3s", d, ok)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if d, ok := retryAfter(now.Add(2*time.Second).Format(http.TimeFormat), now); !ok || d != 2*time.Second {
		t.Fatalf("HTTP date: got %v, %v; want 2s", d, ok)
	}
}

func TestSourceNamesNamespaceAndStream(t *testing.T) {
	if got := Source("shop/orders"); got != "/namespaces/shop/streams/orders" {
		t.Fatalf("got %q", got)
	}
}

func TestReplyIDIsDeterministicPerReactorCauseAndIndex(t *testing.T) {
	a := ReplyID("ns/r", "cause", 0)
	if a != ReplyID("ns/r", "cause", 0) {
		t.Fatal("same inputs gave different ids")
	}
	for _, other := range []string{ReplyID("ns/r", "cause", 1), ReplyID("ns/r", "other", 0), ReplyID("ns/s", "cause", 0)} {
		if other == a {
			t.Fatalf("different inputs gave the same id %s", a)
		}
	}
}

// A delivery's header map is sized for what it holds: one sized past it
// takes twice the memory, one sized short grows.
func TestHeaderCountIsWhatSetHeadersWrites(t *testing.T) {
	base := engine.Message{ID: "e1", Name: "OrderPaid", Stream: "shop/orders", Sequence: 7, CorrelationID: "c1"}
	keyed := base
	keyed.Key, keyed.CausationID = "order-1", "cause"
	ingested := keyed
	ingested.Headers = map[string]string{
		"ce-specversion": "1.0", "ce-source": "/bench", "ce-datacontenttype": "application/json",
		"ce-partitionkey": "stale", "x-internal": "not sent",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "vendor=1",
	}
	for name, msg := range map[string]engine.Message{"bare": base, "keyed and caused": keyed, "ingested": ingested} {
		h := http.Header{}
		setHeaders(tracing.FromHeaders(context.Background(), msg.Headers), h, msg)
		if got := headerCount(msg); got != len(h) {
			t.Errorf("%s: headerCount = %d, setHeaders wrote %d: %v", name, got, len(h), h)
		}
	}
}

// Reply ids are stored: a redelivery after an upgrade must derive the
// very ids it derived before, or the reply is stored twice.
func TestReplyIDIsTheUUIDv5OfReactorCauseAndIndex(t *testing.T) {
	long := strings.Repeat("c", 300) // past ReplyID's stack buffer
	for _, c := range []struct {
		reactor, cause string
		index          int
	}{{"shop/ship", "0195f7c2-5a8e-7b1c-9d0e-000000000001", 0}, {"shop/ship", "x", 12}, {"", "", 0}, {"a/b", long, 3}} {
		want := uuid.NewSHA1(replyNamespace, []byte(c.reactor+"\x00"+c.cause+"\x00"+strconv.Itoa(c.index))).String()
		if got := ReplyID(c.reactor, c.cause, c.index); got != want {
			t.Errorf("ReplyID(%q, %q, %d) = %s, want %s", c.reactor, c.cause, c.index, got, want)
		}
	}
	if got, want := ReplyID("shop/ship", "0195f7c2-5a8e-7b1c-9d0e-000000000001", 0), "c0fdbf04-5dcf-5aa6-9eb0-6b539e6a5228"; got != want {
		t.Errorf("ReplyID changed: got %s, want %s", got, want)
	}
}

func TestClientRefusesLoopbackAtDialUnlessAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()

	resp, err := NewClient(false).Get(srv.URL)
	if err == nil {
		_ = resp.Body.Close()
	}
	if !errors.Is(err, ErrPrivateSink) {
		t.Fatalf("got %v, want ErrPrivateSink", err)
	}
	resp, err = NewClient(true).Get(srv.URL)
	if err != nil {
		t.Fatalf("allowed: %v", err)
	}
	_ = resp.Body.Close()
}

func TestSinkRefusalOfAPrivateAddressIsPermanent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	s, err := NewSink(SinkConfig{URL: srv.URL, Client: NewClient(false)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Handle(context.Background(), engine.Message{ID: "1", Name: "E", Stream: "ns/s"})
	if !errors.Is(err, ErrPrivateSink) || !engine.IsPermanent(err) {
		t.Fatalf("got %v, want a permanent ErrPrivateSink", err)
	}
}

// observations records what an Observer is given.
type observations []float64

func (o *observations) Observe(v float64) { *o = append(*o, v) }

func TestSinkObservesEachAttemptsRoundTripWhateverItsAnswer(t *testing.T) {
	answers := []int{http.StatusServiceUnavailable, http.StatusOK}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(answers[0])
		answers = answers[1:]
	}))
	defer srv.Close()
	var seen observations
	s, err := NewSink(SinkConfig{URL: srv.URL, Client: NewClient(true), RoundTrips: &seen})
	if err != nil {
		t.Fatal(err)
	}
	msg := engine.Message{ID: "1", Name: "E", Stream: "ns/s"}
	if _, err := s.Handle(context.Background(), msg); err == nil {
		t.Fatal("a 503: got no error, want one to retry")
	}
	if _, err := s.Handle(context.Background(), msg); err != nil {
		t.Fatalf("a 200: got %v, want nil", err)
	}
	if len(seen) != 2 {
		t.Fatalf("got %d round trips observed, want 2: %v", len(seen), seen)
	}
	for i, v := range seen {
		if v < 0.002 {
			t.Errorf("round trip %d: got %gs, want at least the sink's 2ms", i, v)
		}
	}
}

func TestCheckSinkHostRefusesPrivateLiterals(t *testing.T) {
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "169.254.169.254", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1"} {
		if err := CheckSinkHost(host); !errors.Is(err, ErrPrivateSink) {
			t.Errorf("%s: got %v, want ErrPrivateSink", host, err)
		}
	}
	for _, host := range []string{"10.0.0.5", "shipping.default.svc", "203.0.113.7"} {
		if err := CheckSinkHost(host); err != nil {
			t.Errorf("%s: got %v, want nil", host, err)
		}
	}
}

func TestSetHeadersWritesTheEventsAttributesAndItsOtherCEHeadersOnly(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 5, time.UTC)
	msg := engine.Message{
		ID: "id-1", Name: "OrderPaid", Stream: "shop/orders", Key: "order-7", Sequence: 42, Time: at,
		CorrelationID: "corr-1", CausationID: "cause-1", ContentType: "application/avro",
		Headers: map[string]string{
			"ce-region": "eu", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			"x-internal": "no", "ce-id": "a stored id the event's own replaces",
		},
	}
	h := http.Header{}
	// Without a tracer that records, the delivery's span context is the
	// event's own.
	setHeaders(tracing.FromHeaders(context.Background(), msg.Headers), h, msg)
	want := http.Header{
		"Content-Type":     {"application/avro"},
		"Ce-Specversion":   {"1.0"},
		"Ce-Id":            {"id-1"},
		"Ce-Type":          {"OrderPaid"},
		"Ce-Source":        {"/namespaces/shop/streams/orders"},
		"Ce-Partitionkey":  {"order-7"},
		"Ce-Time":          {"2026-12-06T10:00:00.000000005Z"},
		"Ce-Sequence":      {"42"},
		"Ce-Correlationid": {"corr-1"},
		"Ce-Causationid":   {"cause-1"},
		"Ce-Region":        {"eu"},
		"Traceparent":      {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("headers:\n got %v\nwant %v", h, want)
	}
	// A header's value is a slice of its own: appending to one (as a
	// caller adding a value would) must not change another.
	h["Ce-Id"] = append(h["Ce-Id"], "x")
	if got := h.Get("Ce-Type"); got != "OrderPaid" {
		t.Fatalf("appending to Ce-Id changed Ce-Type to %q", got)
	}

	unkeyed := engine.Message{ID: "id-2", Name: "Ping", Stream: "orders", Time: at}
	h = http.Header{"Ce-Partitionkey": {"stale"}, "Ce-Causationid": {"stale"}}
	setHeaders(context.Background(), h, unkeyed)
	if _, ok := h["Ce-Partitionkey"]; ok {
		t.Errorf("an unkeyed event keeps a partition key: %v", h)
	}
	if _, ok := h["Ce-Causationid"]; ok {
		t.Errorf("an event without a cause keeps a causation id: %v", h)
	}
	if got := h.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json for an event without one", got)
	}
}
