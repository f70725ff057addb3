package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// jsonDecoders decodes every payload as JSON, standing in for the serde
// registry.
type jsonDecoders struct{}

func (jsonDecoders) Decode(_, _ string, payload []byte) (any, error) {
	var v any
	if err := json.Unmarshal(payload, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// chainFixture is the default chain (Deserialize, Logging, Retry, Metrics,
// Dedupe) with DeadLetter outermost, as the router wires a projection.
type chainFixture struct {
	handler engine.Handler
	logs    *logRecorder
	metrics *Metrics
	dead    *fakeEnqueuer
	sleeps  *sleepRecorder
}

const chainMaxAttempts = 3

func newChainFixture(t *testing.T, next engine.Handler) *chainFixture {
	t.Helper()
	f := &chainFixture{logs: newLogRecorder(slog.LevelDebug), dead: &fakeEnqueuer{}}
	var err error
	if f.metrics, err = NewMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	var retry engine.Middleware
	retry, f.sleeps = testRetry(t, RetryConfig{MaxAttempts: chainMaxAttempts}, 0.5)
	dedupe, err := Dedupe(DedupeConfig{})
	if err != nil {
		t.Fatalf("Dedupe: %v", err)
	}
	f.handler = engine.Chain(next,
		testDeadLetter(t, f.dead, "items-projection"),
		Deserialize(jsonDecoders{}),
		Logging(slog.New(f.logs), slog.LevelDebug, "items-projection"),
		retry,
		f.metrics.Middleware("items-projection"),
		dedupe,
	)
	return f
}

func (f *chainFixture) handled(t *testing.T, result string) float64 {
	t.Helper()
	return valueOf(t, f.metrics.handled.WithLabelValues("items-projection", result))
}

func (f *chainFixture) logTexts() []string {
	records := f.logs.all()
	texts := make([]string, 0, len(records))
	for _, r := range records {
		texts = append(texts, r.level.String()+" "+r.text)
	}
	return texts
}

func TestDefaultChainRetriesInsideLogging(t *testing.T) {
	next := newScriptedHandler(errBoom, errBoom, nil)
	f := newChainFixture(t, next)

	if _, err := f.handler.Handle(context.Background(), testMessage()); err != nil {
		t.Fatalf("Handle: got error %v, want nil", err)
	}
	if next.calls() != 3 {
		t.Errorf("handler calls: got %d, want 3", next.calls())
	}
	// Logging is outside Retry: one line for the event, no error lines.
	if got := f.logTexts(); len(got) != 1 || got[0] != "DEBUG event handled" {
		t.Errorf("log lines: got %q, want [\"DEBUG event handled\"]", got)
	}
	// Metrics is inside Retry: it counts attempts.
	if e, s := f.handled(t, "error"), f.handled(t, "success"); e != 2 || s != 1 {
		t.Errorf("handled_total error and success: got %v and %v, want 2 and 1", e, s)
	}
	if _, ok := next.last().Value.(map[string]any); !ok {
		t.Errorf("handler got Value %#v, want the decoded payload", next.last().Value)
	}
}

func TestDefaultChainSkipsDuplicate(t *testing.T) {
	next := newScriptedHandler()
	f := newChainFixture(t, next)

	for i := range 2 {
		_, err := f.handler.Handle(context.Background(), testMessage())
		if wantSkip := i == 1; errors.Is(err, engine.ErrSkip) != wantSkip || (err != nil && !wantSkip) {
			t.Errorf("delivery %d: got error %v, want skipped=%v", i+1, err, wantSkip)
		}
	}
	if next.calls() != 1 {
		t.Errorf("handler calls: got %d, want 1", next.calls())
	}
	if got := f.handled(t, "skipped"); got != 1 {
		t.Errorf("handled_total skipped: got %v, want 1", got)
	}
	if n := len(f.dead.enqueued()); n != 0 {
		t.Errorf("dead-lettered %d messages, want 0", n)
	}
}

func TestDefaultChainDeadLettersBadPayloadAfterOneAttempt(t *testing.T) {
	next := newScriptedHandler()
	f := newChainFixture(t, next)
	msg := testMessage()
	msg.Payload = []byte(`{"foo":`)

	_, err := f.handler.Handle(context.Background(), msg)
	if !errors.Is(err, engine.ErrDeadLettered) {
		t.Fatalf("got error %v, want one wrapping ErrDeadLettered", err)
	}
	if next.calls() != 0 || len(f.sleeps.waits) != 0 {
		t.Errorf("handler calls and retry waits: got %d and %d, want 0 and 0", next.calls(), len(f.sleeps.waits))
	}
	dead := f.dead.enqueued()
	if len(dead) != 1 || dead[0].Header(engine.HeaderDeadLetterAttempts) != "1" {
		t.Fatalf("dead letters: got %+v, want one with %s=1", dead, engine.HeaderDeadLetterAttempts)
	}
	if reason := dead[0].Header(engine.HeaderDeadLetterError); !strings.Contains(reason, "deserialize") {
		t.Errorf("dead-letter reason: got %q, want it to say deserialize", reason)
	}
}

func TestDefaultChainDeadLettersFailingHandlerAfterMaxAttempts(t *testing.T) {
	next := newScriptedHandler(errBoom)
	f := newChainFixture(t, next)

	_, err := f.handler.Handle(context.Background(), testMessage())
	if !errors.Is(err, engine.ErrDeadLettered) {
		t.Fatalf("got error %v, want one wrapping ErrDeadLettered", err)
	}
	if next.calls() != chainMaxAttempts {
		t.Errorf("handler calls: got %d, want %d", next.calls(), chainMaxAttempts)
	}
	dead := f.dead.enqueued()
	want := strconv.Itoa(chainMaxAttempts)
	if len(dead) != 1 || dead[0].Header(engine.HeaderDeadLetterAttempts) != want {
		t.Fatalf("dead letters: got %+v, want one with %s=%s", dead, engine.HeaderDeadLetterAttempts, want)
	}
	// Logging sees the final failure once, after the retries.
	if got := f.logTexts(); len(got) != 1 || got[0] != "ERROR event handler failed" {
		t.Errorf("log lines: got %q, want [\"ERROR event handler failed\"]", got)
	}
	// The failed event was not remembered, so a redelivery reaches the handler.
	_, _ = f.handler.Handle(context.Background(), testMessage())
	if next.calls() != 2*chainMaxAttempts {
		t.Errorf("handler calls after redelivery: got %d, want %d", next.calls(), 2*chainMaxAttempts)
	}
}

// benchmarkChain runs b.N distinct messages through the default chain in
// front of a no-op handler, as it is configured by default: per-event lines
// at debug on a logger at info.
func benchmarkChain(b *testing.B, preDecoded bool) {
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	retry, err := Retry(RetryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	dedupe, err := Dedupe(DedupeConfig{})
	if err != nil {
		b.Fatal(err)
	}
	h := engine.Chain(noopHandler,
		Deserialize(jsonDecoders{}),
		Logging(logger, slog.LevelDebug, "bench"),
		retry,
		metrics.Middleware("bench"),
		dedupe,
	)
	// Distinct ids, made up front, so Dedupe never skips and the ids are
	// not counted. The rest is shared, as the broker shares it.
	base := testMessage()
	if preDecoded {
		base.Value = map[string]any{"foo": "a", "n": 1.0}
	}
	msgs := make([]engine.Message, b.N)
	for i := range msgs {
		msgs[i] = base
		msgs[i].ID = strconv.Itoa(i)
		msgs[i].Sequence = uint64(i + 1)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := h.Handle(ctx, msgs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDefaultChain is one JSON message through the default chain.
func BenchmarkDefaultChain(b *testing.B) { benchmarkChain(b, false) }

// BenchmarkDefaultChainPreDecoded leaves out the JSON decoding, to show what
// the middleware itself costs.
func BenchmarkDefaultChainPreDecoded(b *testing.B) { benchmarkChain(b, true) }

// Validate checks syntax only, as the serde JSON decoder does.
func (jsonDecoders) Validate(_, _ string, payload []byte) error {
	if !json.Valid(payload) {
		return errors.New("invalid JSON")
	}
	return nil
}
