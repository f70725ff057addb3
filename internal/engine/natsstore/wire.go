package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
	case errors.As(err, &je) && je.Code == 503:
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

// directGet is the request of JetStream's direct get API.
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
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("natsstore: read %s: %w", stream, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return fmt.Errorf("natsstore: read %s: %w", stream, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return fmt.Errorf("natsstore: read %s: %w", stream, err)
		}
		done, s, err := parseStored(m)
		if err != nil || done {
			return err
		}
		if err := fn(s); err != nil {
			return err
		}
		if req.Batch <= 1 && len(req.MultiLastFor) == 0 {
			return nil
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
