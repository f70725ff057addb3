package reactor

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // UUIDv5 is SHA-1 by definition
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/cloudevents"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/tracing"
)

// MaxReplyBytes bounds the body of a sink's answer that is read.
const MaxReplyBytes = 8 << 20

// ReplyFunc appends the events a sink answered cause with. It returns an
// engine.Permanent error for replies that are not valid events of the reply
// stream, and waits (until ctx ends) while they cannot be taken yet. The
// replies' payloads and headers are its own: nothing else holds them.
type ReplyFunc func(ctx context.Context, cause engine.Message, replies []cloudevents.Event) error

// SinkConfig configures a Sink.
type SinkConfig struct {
	// URL is the resolved sink address.
	URL string
	// Client sends the requests (NewClient).
	Client *http.Client
	// Timeout bounds one HTTP attempt, answer included (default 10s).
	Timeout time.Duration
	// Audience, when set, sends with each request a bearer token for it,
	// from Tokens.
	Audience string
	Tokens   TokenSource
	// Reply takes the events in 2xx answers; nil ignores answers. Its ctx
	// holds the delivery's span.
	Reply ReplyFunc
	// RoundTrips, when set, observes each attempt's round trip in seconds,
	// from sending the request to reading the answer (or failing to).
	RoundTrips Observer
	// Reactor names the reactor in its delivery spans ("deliver {Reactor}").
	Reactor string
	// Tracer starts a client span per attempt, whose context the request
	// carries as its traceparent. Without one the request carries the
	// trace context of ctx, else the event's own.
	Tracer trace.Tracer
}

// Observer takes one measurement (prometheus.Observer is one).
type Observer interface {
	Observe(float64)
}

// TokenSource gives bearer tokens of the manager's identity, each valid
// for one audience only, so that a sink can check who calls it.
type TokenSource interface {
	Token(ctx context.Context, audience string) (string, error)
}

// Sink is the innermost handler of a reactor: it delivers one event over
// HTTP in CloudEvents binary mode and turns the answer into an outcome the
// pipeline understands: nil for a 2xx, a plain error for what a retry may
// mend (5xx, 408, 429 with its Retry-After, timeouts, connection errors) and
// engine.Permanent for the rest (other 4xx, invalid replies), which Retry
// gives up on at once.
type Sink struct {
	cfg SinkConfig
	// spanName and spanOptions start every delivery span.
	spanName    string
	spanOptions []trace.SpanStartOption
}

// NewSink checks cfg and returns its Sink.
func NewSink(cfg SinkConfig) (*Sink, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("sink URL %q: %w", cfg.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("sink URL %q: want http or https", cfg.URL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("sink URL %q has no host", cfg.URL)
	}
	if cfg.Client == nil {
		return nil, errors.New("sink: Client is required")
	}
	if cfg.Audience != "" && cfg.Tokens == nil {
		return nil, fmt.Errorf("sink audience %q: no token source", cfg.Audience)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Sink{
		cfg:      cfg,
		spanName: strings.TrimSpace("deliver " + cfg.Reactor),
		spanOptions: []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(spanAttributes(u)...),
		},
	}, nil
}

// spanAttributes describe the sink on every delivery span: its address
// without user info, which may hold a password.
func spanAttributes(u *url.URL) []attribute.KeyValue {
	redacted := *u
	redacted.User = nil
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodPost,
		semconv.URLFull(redacted.String()),
		semconv.ServerAddress(u.Hostname()),
	}
	if port, err := strconv.Atoi(u.Port()); err == nil {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	return attrs
}

// DefaultTimeout bounds one delivery attempt when the spec gives none.
const DefaultTimeout = 10 * time.Second

// Handle delivers msg once, in a client span: the child of the span in
// ctx, else of the trace context msg carries.
func (s *Sink) Handle(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = tracing.FromHeaders(ctx, msg.Headers)
	}
	if s.cfg.Tracer == nil {
		return nil, s.deliver(ctx, trace.SpanFromContext(ctx), msg)
	}
	ctx, span := s.cfg.Tracer.Start(ctx, s.spanName, s.spanOptions...)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(tracing.EventAttributes(msg)...)
	}
	err := s.deliver(ctx, span, msg)
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return nil, err
}

// deliver posts msg and hands the answer's events, if any, to Reply.
func (s *Sink) deliver(ctx context.Context, span trace.Span, msg engine.Message) error {
	status, hdr, body, err := s.post(ctx, msg)
	if err != nil {
		return err
	}
	if span.IsRecording() {
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
	if err := classify(status, hdr, body); err != nil {
		return err
	}
	if s.cfg.Reply == nil {
		return nil
	}
	replies, err := cloudevents.ParseReply(hdr, body)
	if err != nil {
		return engine.Permanent(fmt.Errorf("invalid reply: %w", err))
	}
	if len(replies) == 0 {
		return nil
	}
	return s.cfg.Reply(ctx, msg, replies)
}

// post sends msg and reads the answer, both within one attempt's timeout.
func (s *Sink) post(ctx context.Context, msg engine.Message) (int, http.Header, []byte, error) {
	attempt, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(attempt, http.MethodPost, s.cfg.URL, bytes.NewReader(msg.Payload))
	if err != nil {
		return 0, nil, nil, engine.Permanent(err)
	}
	req.Header = make(http.Header, headerCount(msg))
	setHeaders(attempt, req.Header, msg)
	if s.cfg.Audience != "" {
		// A token that cannot be had yet is retried like a connection
		// error: the sink is not reached without one.
		token, err := s.cfg.Tokens.Token(attempt, s.cfg.Audience)
		if err != nil {
			return 0, nil, nil, s.attemptError(ctx, attempt, fmt.Errorf("get a token for audience %q: %w", s.cfg.Audience, err))
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, body, err := s.roundTrip(req)
	if err != nil {
		if errors.Is(err, ErrPrivateSink) {
			return 0, nil, nil, engine.Permanent(err)
		}
		return 0, nil, nil, s.attemptError(ctx, attempt, err)
	}
	if len(body) > MaxReplyBytes && resp.StatusCode/100 == 2 {
		return 0, nil, nil, engine.Permanent(fmt.Errorf("invalid reply: the answer is over %d bytes", MaxReplyBytes))
	}
	return resp.StatusCode, resp.Header, body, nil
}

// roundTrip sends req and reads the answer's body, observed by RoundTrips.
func (s *Sink) roundTrip(req *http.Request) (*http.Response, []byte, error) {
	if s.cfg.RoundTrips != nil {
		start := time.Now()
		defer func() { s.cfg.RoundTrips.Observe(time.Since(start).Seconds()) }()
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := readBody(resp)
	if err != nil {
		return nil, nil, fmt.Errorf("read the sink's answer: %w", err)
	}
	return resp, body, nil
}

// readBody reads an answer's body, up to MaxReplyBytes+1 bytes: most
// answers are empty and need no buffer, and one of a known length gets a
// buffer of that length.
func readBody(resp *http.Response) ([]byte, error) {
	switch n := resp.ContentLength; {
	case n == 0:
		return nil, nil
	case n > 0 && n <= MaxReplyBytes:
		body := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	default:
		return io.ReadAll(io.LimitReader(resp.Body, MaxReplyBytes+1))
	}
}

// attemptError names a timeout of the attempt as one; it is retried like a
// connection error.
func (s *Sink) attemptError(ctx, attempt context.Context, err error) error {
	if ctx.Err() == nil && errors.Is(attempt.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("sink did not answer within %s: %w", s.cfg.Timeout, context.DeadlineExceeded)
	}
	return err
}

// classify turns a status into nil (2xx) or an error Retry understands.
func classify(status int, hdr http.Header, body []byte) error {
	if status/100 == 2 {
		return nil
	}
	err := fmt.Errorf("sink answered %d %s%s", status, http.StatusText(status), snippet(body))
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		if after, ok := retryAfter(hdr.Get("Retry-After"), time.Now()); ok {
			return engine.RetryAfter(err, after)
		}
		return err
	default:
		return engine.Permanent(err)
	}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// snippet is the start of an error answer, for the dead-letter reason.
func snippet(body []byte) string {
	const limit = 200
	text := strings.TrimSpace(string(body))
	if text == "" {
		return ""
	}
	if len(text) > limit {
		text = text[:limit] + "..."
	}
	return ": " + text
}

// headerCount is how many headers setHeaders writes for msg, or a little
// more: a map sized past what it holds takes twice the memory, and one that
// grows copies itself.
func headerCount(msg engine.Message) int {
	n := 8 // Content-Type and the ce-* attributes every event has
	if msg.Key != "" {
		n++
	}
	if msg.CausationID != "" {
		n++
	}
	for k := range msg.Headers {
		switch k {
		case "ce-specversion", "ce-id", "ce-type", "ce-source", "ce-partitionkey", "ce-time",
			"ce-sequence", "ce-correlationid", "ce-causationid": // written over
		default:
			if strings.HasPrefix(k, "ce-") || k == "traceparent" || k == "tracestate" {
				n++
			}
		}
	}
	return n
}

// setHeaders writes msg's CloudEvents binary-mode attributes, and the
// trace context of ctx's span (the delivery's) as traceparent and
// tracestate: not the event's own, which names the span that accepted it.
// It is on every delivery's path, so it fills h without Header.Set: the
// values share one slice and the fixed names are written canonical already.
func setHeaders(ctx context.Context, h http.Header, msg engine.Message) {
	vals := make([]string, 0, len(msg.Headers)+10)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	for k, v := range msg.Headers {
		if strings.HasPrefix(k, "ce-") {
			set(textproto.CanonicalMIMEHeaderKey(k), v)
		}
	}
	tracing.Propagator.Inject(ctx, propagation.HeaderCarrier(h))
	ct := msg.ContentType
	if ct == "" {
		ct = "application/json"
	}
	set("Content-Type", ct)
	set("Ce-Specversion", "1.0")
	set("Ce-Id", msg.ID)
	set("Ce-Type", msg.Name)
	set("Ce-Source", Source(msg.Stream))
	if msg.Key != "" {
		set("Ce-Partitionkey", msg.Key)
	} else {
		delete(h, "Ce-Partitionkey")
	}
	set("Ce-Time", msg.Time.UTC().Format(time.RFC3339Nano))
	set("Ce-Sequence", strconv.FormatUint(msg.Sequence, 10))
	set("Ce-Correlationid", msg.CorrelationID)
	if msg.CausationID != "" {
		set("Ce-Causationid", msg.CausationID)
	} else {
		delete(h, "Ce-Causationid")
	}
}

// Source is the ce-source of a stream's events: the engine names streams
// "namespace/name".
func Source(stream string) string {
	if ns, name, ok := strings.Cut(stream, "/"); ok {
		return "/namespaces/" + ns + "/streams/" + name
	}
	return "/streams/" + stream
}

// replyNamespace seeds the ids derived for replies that give none.
var replyNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://eventsourcing.dev/reactor-reply"))

// ReplyID is the id of the index-th reply of reactor to the event causeID,
// when the reply gives none: the same on every redelivery, so the stream's
// idempotency by id stores it once.
func ReplyID(reactor, causeID string, index int) string {
	// uuid.NewSHA1 of the same name, without its allocations: it runs for
	// every reply.
	var buf [160]byte
	name := append(buf[:0], replyNamespace[:]...)
	name = append(name, reactor...)
	name = append(name, 0)
	name = append(name, causeID...)
	name = append(name, 0)
	name = strconv.AppendInt(name, int64(index), 10)
	sum := sha1.Sum(name)
	var id uuid.UUID
	copy(id[:], sum[:])
	id[6] = id[6]&0x0f | 0x50 // version 5
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id.String()
}
