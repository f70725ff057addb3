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

	engbackoff "github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// JetStream's error codes this package tells apart (the server's
// jetstream_errors_generated.go).
const (
	errCodeWrongLastSequence      = 10071
	errCodeWrongLastSequenceConst = 10164
)

// apiError is the error of a JetStream API answer or publish acknowledgement.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("jetstream: %s (code %d, error %d)", e.Description, e.Code, e.ErrCode)
}

// actualLast returns the stream's last sequence that a wrong-last-sequence
// refusal names ("wrong last sequence: 1234"), 0 when it names none.
func actualLast(err error) uint64 {
	desc := ""
	var ae *apiError
	var je *jetstream.APIError
	switch {
	case errors.As(err, &ae):
		desc = ae.Description
	case errors.As(err, &je):
		desc = je.Description
	}
	i := strings.LastIndexByte(desc, ':')
	if i < 0 {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(desc[i+1:]), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// incompleteBatch reports whether err says an atomic batch arrived short,
// so that nothing of it was stored and it may be sent again.
func incompleteBatch(err error) bool {
	var je *jetstream.APIError
	return errors.As(err, &je) && je.ErrorCode == errCodeIncompleteBatch
}

// wrongLast reports whether err says an expected last sequence did not hold.
func wrongLast(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.ErrCode == errCodeWrongLastSequence || ae.ErrCode == errCodeWrongLastSequenceConst
	}
	var je *jetstream.APIError
	return errors.As(err, &je) &&
		(je.ErrorCode == errCodeWrongLastSequence || je.ErrorCode == errCodeWrongLastSequenceConst)
}

// unavailable marks err as eventstore.ErrUnavailable when it says
// JetStream could not be reached or did not answer in time: the caller may
// retry, and the same IDs are stored once.
func unavailable(err error) error {
	if err == nil || errors.Is(err, eventstore.ErrUnavailable) {
		return err
	}
	var je *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, context.DeadlineExceeded):
	case errors.As(err, &je) && (je.Code == 503 || je.ErrorCode == errCodeIncompleteBatch):
	default:
		return err
	}
	return fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
}

// stored is one message as a direct get returns it.
type stored struct {
	Subject  string
	Sequence uint64
	Time     time.Time
	Data     []byte
}

// directGet is the body of a message get, direct (any replica answers)
// or from the stream's leader.
type directGet struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
	UpToSeq uint64 `json:"up_to_seq,omitempty"`
	// MultiLastFor asks for the last message of each subject, in one answer.
	MultiLastFor []string `json:"multi_last,omitempty"`
}

// getBatch asks the stream for up to req.Batch messages from req.Seq on
// (matching req.NextFor when set), in sequence order, and calls fn with each.
// Any replica of the stream answers (allow_direct), so reads spread out.
func getBatch(ctx context.Context, nc *nats.Conn, stream string, req directGet, fn func(stored) error) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	for attempt := 0; ; attempt++ {
		answered, err := getBatchOnce(ctx, nc, stream, body, req, fn)
		if err == nil || answered || ctx.Err() != nil {
			return err
		}
		if errors.Is(err, nats.ErrNoResponders) && streamMissing(ctx, nc, stream) {
			// Nobody serves a stream that does not exist: it read as empty
			// then, even if another writer creates it a moment later.
			return fmt.Errorf("%w: %w", errStreamMissing, err)
		}
		// Unanswered (no responders while a stream leader is elected, or a
		// replica that stayed silent): ask again, another replica may answer.
		if serr := engbackoff.Sleep(ctx, time.Duration(min(attempt+1, 10))*20*time.Millisecond); serr != nil {
			return err
		}
	}
}

// errStreamMissing wraps a read of a stream that did not exist when it was
// read.
var errStreamMissing = errors.New("the stream does not exist")

// streamMissing reports whether JetStream says the stream does not exist.
func streamMissing(ctx context.Context, nc *nats.Conn, stream string) bool {
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	_, err = js.Stream(ctx, stream)
	return errors.Is(err, jetstream.ErrStreamNotFound)
}

// directGetWait is how long one direct get waits for its first answer
// before asking again: any replica answers in milliseconds.
const directGetWait = time.Second

// getBatchOnce sends one direct get and reads its answer; answered says
// whether any answer came, after which an error is final.
func getBatchOnce(ctx context.Context, nc *nats.Conn, stream string, body []byte, req directGet,
	fn func(stored) error) (answered bool, err error) {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return false, fmt.Errorf("natsstore: read %s: %w", stream, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return false, fmt.Errorf("natsstore: read %s: %w", stream, err)
	}
	for {
		wait := ctx
		if !answered {
			var cancel context.CancelFunc
			wait, cancel = context.WithTimeout(ctx, directGetWait)
			defer cancel()
		}
		m, err := sub.NextMsgWithContext(wait)
		if err != nil {
			return answered, fmt.Errorf("natsstore: read %s: %w", stream, err)
		}
		if m.Header.Get("Status") == "503" { // no responders: nobody serves the stream right now
			return false, fmt.Errorf("natsstore: read %s: %w", stream, nats.ErrNoResponders)
		}
		answered = true
		done, s, err := parseStored(m)
		if err != nil || done {
			return true, err
		}
		if err := fn(s); err != nil {
			return true, err
		}
		if req.Batch <= 1 && len(req.MultiLastFor) == 0 {
			return true, nil
		}
	}
}

// errNotFound is a direct get that found no message.
var errNotFound = errors.New("natsstore: no such message")

// getOne returns the one message req names, errNotFound when there is none.
func getOne(ctx context.Context, nc *nats.Conn, stream string, req directGet) (stored, error) {
	var out stored
	found := false
	req.Batch = 0
	err := getBatch(ctx, nc, stream, req, func(s stored) error {
		out, found = s, true
		return nil
	})
	if err == nil && !found {
		err = errNotFound
	}
	return out, err
}

// parseStored reads one answer of a direct get: a message, or the end of
// the answer (done).
func parseStored(m *nats.Msg) (done bool, s stored, err error) {
	if status := m.Header.Get("Status"); status != "" {
		switch status {
		case "204", "404": // end of a batch; nothing (more) to get
			return true, s, nil
		case "408":
			return true, s, errors.New("natsstore: direct get timed out")
		default:
			return true, s, fmt.Errorf("natsstore: direct get: %s %s", status, m.Header.Get("Description"))
		}
	}
	seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil {
		return true, s, fmt.Errorf("natsstore: direct get: no sequence in %v", m.Header)
	}
	t, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
	return false, stored{Subject: m.Header.Get("Nats-Subject"), Sequence: seq, Time: t, Data: m.Data}, nil
}
