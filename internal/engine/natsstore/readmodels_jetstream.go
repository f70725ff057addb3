package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	engbackoff "github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
)

// The layout of the read model stream, <prefix>_RM, every subject under
// <prefix>.rm and holding its last message only (MaxMsgsPerSubject 1):
//
//	h.<projection>          the head: the generation holding the projection's document; empty once deleted
//	n.<gen>                 a generation exists (its projection's name, for people reading the stream)
//	g.<gen>.cp              the checkpoint, JSON; written by every Apply, last, so it is the newest message of its generation
//	g.<gen>.k.<key>.v       a key's value (readmodel_value.go)
//	g.<gen>.k.<key>.<i>     full chunk i of the list under a key
//
// Names and keys are subject tokens (token). Move repoints a head; keys of
// generations no head names any more are purged.
type layout struct {
	stream string
	prefix string // "<prefix>.rm."
}

func newLayout(prefix string) layout {
	return layout{stream: prefix + "_RM", prefix: prefix + ".rm."}
}

func (l layout) all() string                   { return l.prefix + ">" }
func (l layout) heads() string                 { return l.prefix + "h.>" }
func (l layout) head(projection string) string { return l.prefix + "h." + token(projection) }

// headName is the projection whose head is subject.
func (l layout) headName(subject string) (string, bool) {
	tok, ok := strings.CutPrefix(subject, l.prefix+"h.")
	if !ok {
		return "", false
	}
	return untoken(tok)
}

func (l layout) gens() string                 { return l.prefix + "n.>" }
func (l layout) genEntry(gen string) string   { return l.prefix + "n." + gen }
func (l layout) gen(gen string) string        { return l.prefix + "g." + gen + ".>" }
func (l layout) checkpoint(gen string) string { return l.prefix + "g." + gen + ".cp" }
func (l layout) keyPrefix(gen, key string) string {
	return l.prefix + "g." + gen + ".k." + token(key) + "."
}
func (l layout) value(gen, key string) string { return l.keyPrefix(gen, key) + "v" }
func (l layout) chunk(gen, key string, i int) string {
	return l.keyPrefix(gen, key) + strconv.Itoa(i)
}

// genPart is what a subject under g.<gen> is.
type genPart struct {
	checkpoint bool
	key        string
	chunk      int // -1 for the value
}

// parseGen reads a subject under gen; ok is false for one this package
// does not write.
func (l layout) parseGen(gen, subject string) (p genPart, ok bool) {
	rest, found := strings.CutPrefix(subject, l.prefix+"g."+gen+".")
	if !found {
		return p, false
	}
	if rest == "cp" {
		return genPart{checkpoint: true}, true
	}
	rest, found = strings.CutPrefix(rest, "k.")
	if !found {
		return p, false
	}
	tok, last, found := strings.Cut(rest, ".")
	if !found {
		return p, false
	}
	if p.key, ok = untoken(tok); !ok {
		return p, false
	}
	if last == "v" {
		p.chunk = -1
		return p, true
	}
	i, err := strconv.Atoi(last)
	return genPart{key: p.key, chunk: i}, err == nil && i >= 0
}

// newGen names a generation: unique without coordination.
func newGen() string { return nuid.Next() }

// streamConfig is the read model stream's configuration.
func (l layout) streamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               l.stream,
		Description:        "eventsourcing-operator read models and checkpoints",
		Subjects:           []string{l.all()},
		Storage:            jetstream.FileStorage,
		Replicas:           replicas,
		MaxMsgsPerSubject:  1,
		Discard:            jetstream.DiscardOld,
		AllowDirect:        true,
		AllowAtomicPublish: true,
	}
}

// The JetStream API this file calls by hand: nats.go has no atomic batch
// publish, and its stream getters pick direct gets (answered by any
// replica, possibly behind) whenever a stream allows them.
const (
	apiMsgGet     = "$JS.API.STREAM.MSG.GET."
	apiDirectGet  = "$JS.API.DIRECT.GET."
	headerBatchID = "Nats-Batch-Id"
	headerBatchSq = "Nats-Batch-Sequence"
	headerCommit  = "Nats-Batch-Commit"
	headerExpect  = "Nats-Expected-Last-Subject-Sequence"
	// maxBatch is the server's default limit of messages in one atomic
	// batch (jetstream limits max_batch_size).
	maxBatch = 1000
	// errCodeIncompleteBatch is JetStream's answer to a batch it did not
	// receive whole.
	errCodeIncompleteBatch = 10176
	// requestTimeout bounds a request whose context has no deadline.
	requestTimeout = 10 * time.Second
)

// storedMsg is one message read back from the stream.
type storedMsg struct {
	subject string
	seq     uint64
	header  nats.Header
	data    []byte
}

// withTimeout gives ctx a deadline if it has none: a request to a server
// that went away would otherwise wait forever.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// leaderGet asks the stream leader for one message: the last on a subject
// or the first at or after a sequence on a filter. The leader answers only
// after applying every write it acknowledged, so this read sees each Apply
// that returned before it. nil, nil when there is none.
func (s *ReadModels) leaderGet(ctx context.Context, req directGet) (*storedMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var r leaderAnswer
	if err := whileAway(ctx, func() (err error) {
		r, err = s.askLeader(ctx, body)
		return err
	}); err != nil {
		return nil, err
	}
	switch {
	case r.Error != nil && r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, nil
	case r.Error != nil:
		return nil, fmt.Errorf("read from JetStream: %w", r.Error)
	case r.Message == nil:
		return nil, errors.New("read from JetStream: an answer without a message")
	}
	m := &storedMsg{subject: r.Message.Subject, seq: r.Message.Seq, data: r.Message.Data}
	if len(r.Message.Header) > 0 {
		if m.header, err = nats.DecodeHeadersMsg(r.Message.Header); err != nil {
			return nil, fmt.Errorf("read from JetStream: headers: %w", err)
		}
	}
	return m, nil
}

// leaderAnswer is the stream leader's answer to a message get.
type leaderAnswer struct {
	Error   *jetstream.APIError `json:"error"`
	Message *struct {
		Subject string `json:"subject"`
		Seq     uint64 `json:"seq"`
		Header  []byte `json:"hdrs"`
		Data    []byte `json:"data"`
	} `json:"message"`
}

// askLeader sends one message get to the stream leader.
func (s *ReadModels) askLeader(ctx context.Context, body []byte) (leaderAnswer, error) {
	var r leaderAnswer
	actx, cancel := context.WithTimeout(ctx, directGetWait)
	defer cancel()
	resp, err := s.nc.RequestWithContext(actx, apiMsgGet+s.l.stream, body)
	if err != nil {
		return r, fmt.Errorf("read from JetStream: %w", unanswered(ctx, err))
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return r, fmt.Errorf("read from JetStream: answer: %w", err)
	}
	if r.Error != nil && r.Error.Code == 503 {
		return r, fmt.Errorf("read from JetStream: %w", r.Error)
	}
	return r, nil
}

// whileAway runs ask until it succeeds, fails for another reason than
// leaderAway, or ctx ends (then ask's last error is returned). A stream
// whose leader went away answers nobody until its replicas elect another;
// one just created answers nobody until its replicas listen for direct
// gets, which reach every server of a cluster a moment later.
func whileAway(ctx context.Context, ask func() error) error {
	wait := &engbackoff.Backoff{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond, Jitter: 0.5}
	for {
		err := ask()
		if err == nil || !leaderAway(err) {
			return err
		}
		if werr := wait.Wait(ctx); werr != nil {
			return err
		}
	}
}

// leaderAway reports a get that nobody answered, or that JetStream
// refused as unavailable: what a stream whose leader went away answers
// until its replicas elect another.
func leaderAway(err error) bool {
	var je *jetstream.APIError
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, errUnanswered) || errors.As(err, &je) && je.Code == 503
}

// errUnanswered wraps a get that had no answer within directGetWait while
// the caller's context went on: a request sent while a new stream had no
// leader yet is dropped, not refused, and would wait as long as ctx lets.
var errUnanswered = errors.New("no answer in time")

// unanswered marks err as errUnanswered when it is the end of one
// attempt's wait, not of ctx.
func unanswered(ctx context.Context, err error) error {
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", errUnanswered, err)
	}
	return err
}

// last is the last message on subject, from the leader; nil if none.
func (s *ReadModels) last(ctx context.Context, subject string) (*storedMsg, error) {
	return s.leaderGet(ctx, directGet{LastFor: subject})
}

// scanLeader hands fn every message on filter in sequence order, one
// leader read each.
func (s *ReadModels) scanLeader(ctx context.Context, filter string, fn func(m *storedMsg) error) error {
	for seq := uint64(0); ; {
		m, err := s.leaderGet(ctx, directGet{Seq: seq, NextFor: filter})
		if err != nil || m == nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
		seq = m.seq + 1
	}
}

// errTruncated says a direct get did not answer with everything at once.
var errTruncated = errors.New("more than one answer holds")

// directPage reads every message on filter in ONE direct batch get: one
// replica answers it from one state of the stream, between two writes, so
// what it returns is a snapshot (maybe an old one: callers check). It
// fails with errTruncated when the messages exceed what one answer holds
// (the server's max_pending bytes).
func (s *ReadModels) directPage(ctx context.Context, filter string) ([]*storedMsg, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	body, err := json.Marshal(directGet{NextFor: filter, Batch: 1 << 30})
	if err != nil {
		return nil, err
	}
	var out []*storedMsg
	err = whileAway(ctx, func() (err error) {
		out, err = s.directBatch(ctx, body)
		return err
	})
	return out, err
}

// directBatch sends one direct batch get and gathers its answer.
func (s *ReadModels) directBatch(ctx context.Context, body []byte) ([]*storedMsg, error) {
	inbox := s.nc.NewInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("read from JetStream: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	if err := s.nc.PublishRequest(apiDirectGet+s.l.stream, inbox, body); err != nil {
		return nil, fmt.Errorf("read from JetStream: %w", err)
	}
	var out []*storedMsg
	first, cancel := context.WithTimeout(ctx, directGetWait)
	defer cancel()
	for {
		wait := ctx
		if out == nil {
			wait = first
		}
		m, err := sub.NextMsgWithContext(wait)
		if err != nil {
			return nil, fmt.Errorf("read from JetStream: %w", unanswered(ctx, err))
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "404": // nothing on filter
			return nil, nil
		case "204": // end of batch
			if m.Header.Get("Nats-Num-Pending") != "0" {
				return nil, errTruncated
			}
			return out, nil
		default:
			return nil, fmt.Errorf("read from JetStream: direct get: %s %s", status, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("read from JetStream: direct get: sequence: %w", err)
		}
		out = append(out, &storedMsg{subject: m.Header.Get(jetstream.SubjectHeader), seq: seq, header: m.Header, data: m.Data})
	}
}

// outMsg is one message of a batch to write.
type outMsg struct {
	subject string
	data    []byte
	// expect, when set, is the last sequence subject must have for the
	// batch to commit (0: no message); expectSet says it is.
	expect    uint64
	expectSet bool
}

// errConflict is a batch refused because a subject it expects did not
// have the sequence it expected: someone else wrote it since.
var errConflict = errors.New("another writer's revision where this store expected its own")

// errInDoubt wraps a failure after which the batch may or may not have
// been stored: its answer never came.
var errInDoubt = errors.New("the answer to the commit was lost")

// errTransient wraps a refusal that may pass on a retry: no stream leader
// for the moment, too many batches open.
var errTransient = errors.New("JetStream is not ready for it")

// commit writes msgs as one atomic batch and returns the sequence of the
// last. The server checks every expectation before storing any message,
// and stores all or none, in one step no read interleaves with. id names
// the batch (Nats-Batch-Id, kept in the stored messages' headers).
func (s *ReadModels) commit(ctx context.Context, id string, msgs []outMsg) (uint64, error) {
	if len(msgs) > maxBatch {
		return 0, fmt.Errorf("%d messages, more than the %d of one atomic JetStream batch", len(msgs), maxBatch)
	}
	out := make([]*nats.Msg, len(msgs))
	for i, m := range msgs {
		h := nats.Header{
			headerBatchID: []string{id},
			headerBatchSq: []string{strconv.Itoa(i + 1)},
		}
		if m.expectSet {
			h[headerExpect] = []string{strconv.FormatUint(m.expect, 10)}
		}
		if i == len(msgs)-1 {
			h[headerCommit] = []string{"1"}
		}
		out[i] = &nats.Msg{Subject: m.subject, Header: h, Data: m.data}
		if n := len(m.subject) + len(m.data) + 256; int64(n) > s.nc.MaxPayload() {
			return 0, fmt.Errorf("message %s of %d bytes is larger than the %d bytes the NATS server takes (max_payload)",
				m.subject, len(m.data), s.nc.MaxPayload())
		}
	}
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	for _, m := range out[:len(out)-1] {
		if err := s.nc.PublishMsg(m); err != nil {
			// A batch without its commit is never stored.
			return 0, fmt.Errorf("%w: publish to JetStream: %w", errTransient, err)
		}
	}
	rctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.nc.RequestMsgWithContext(rctx, out[len(out)-1])
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return 0, fmt.Errorf("%w: the stream %s does not answer: %w", errTransient, s.l.stream, err)
	case err != nil:
		return 0, fmt.Errorf("%w: %w", errInDoubt, err)
	}
	var ack struct {
		Error *jetstream.APIError `json:"error"`
		Seq   uint64              `json:"seq"`
		Count int                 `json:"count"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("%w: the answer does not decode: %w", errInDoubt, err)
	}
	if e := ack.Error; e != nil {
		switch {
		case e.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence, e.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return 0, fmt.Errorf("%w (%s)", errConflict, e.Description)
		case e.Code == 503, e.Code == 429, e.ErrorCode == errCodeIncompleteBatch:
			return 0, fmt.Errorf("%w: %w", errTransient, e)
		}
		return 0, fmt.Errorf("JetStream refused the batch: %w", e)
	}
	if ack.Count != len(msgs) {
		return 0, fmt.Errorf("JetStream stored %d messages of a batch of %d", ack.Count, len(msgs))
	}
	return ack.Seq, nil
}

// purge removes the messages on filter below sequence before (all of
// them when before is 0).
func (s *ReadModels) purge(ctx context.Context, filter string, before uint64) error {
	opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(filter)}
	if before > 0 {
		opts = append(opts, jetstream.WithPurgeSequence(before))
	}
	if err := s.stream.Purge(ctx, opts...); err != nil {
		return fmt.Errorf("purge %s: %w", filter, err)
	}
	return nil
}
