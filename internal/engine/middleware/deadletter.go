package middleware

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// deadLetterNamespace seeds the name-based UUIDs of dead-letter messages.
var deadLetterNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://eventsourcing.dev/dead-letter"))

// Enqueuer accepts messages for appending, as the outbox does. It is what
// DeadLetter needs to put a failed message in the dead-letter stream.
type Enqueuer interface {
	// Enqueue adds msgs, all or none.
	Enqueue(ctx context.Context, msgs []engine.Message) error
}

// DeadLetterConfig configures DeadLetter. Every field is required.
type DeadLetterConfig struct {
	// Enqueuer receives the dead-letter messages (the outbox).
	Enqueuer Enqueuer
	// Stream is the dead-letter stream.
	Stream string
	// Handler names the handler (projection) being wrapped; it goes in the
	// dead-letter headers and the dead-letter message's id.
	Handler string
}

// Validate reports every missing field.
func (c DeadLetterConfig) Validate() error {
	var errs []error
	if c.Enqueuer == nil {
		errs = append(errs, errors.New("dead letter: enqueuer is required"))
	}
	if c.Stream == "" {
		errs = append(errs, errors.New("dead letter: stream is required"))
	}
	if c.Handler == "" {
		errs = append(errs, errors.New("dead letter: handler is required"))
	}
	return errors.Join(errs...)
}

// DeadLetter puts a message the next handler failed on into the dead-letter
// stream and settles it, returning an error that wraps engine.ErrDeadLettered.
// It belongs outside Retry, so only a message whose retries are spent (or
// whose error is permanent) gets here.
//
// The dead-letter message keeps the original's name, payload, content type,
// correlation id and headers, is caused by the original, and gets headers that
// say why, from where and after how many attempts. Its id is derived from the
// handler, stream and original id, so a failure that is redelivered is stored
// once; a redriven event (engine.RedriveOf) that fails again gets an id of its
// generation and the header engine.HeaderDeadLetterRedrives, so it is stored
// as a new dead letter that a later redrive can pick up.
//
// Left as they are: success, engine.ErrSkip and engine.ErrDeadLettered
// outcomes; any error once ctx is done (shutdown is not the event's fault);
// and failures of messages from the dead-letter stream itself, which would
// otherwise loop. If Enqueue fails its error is returned, so the message is
// not settled and will be delivered again.
func DeadLetter(cfg DeadLetterConfig) (engine.Middleware, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func(next engine.Handler) engine.Handler {
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			out, err := next.Handle(ctx, msg)
			if err == nil || errors.Is(err, engine.ErrSkip) || errors.Is(err, engine.ErrDeadLettered) ||
				ctx.Err() != nil || msg.Stream == cfg.Stream {
				return out, err
			}
			attempts := engine.Attempts(err)
			redrive, _ := engine.RedriveOf(ctx)
			dead := deadLetterMessage(cfg, msg, err, attempts, redrive.Generation)
			if eerr := cfg.Enqueuer.Enqueue(ctx, []engine.Message{dead}); eerr != nil {
				return nil, fmt.Errorf("dead-letter event %q of stream %q: %w (handler error: %v)", msg.ID, msg.Stream, eerr, err)
			}
			return nil, fmt.Errorf("event %q of stream %q sent to %q after %d attempts: %w: %v",
				msg.ID, msg.Stream, cfg.Stream, attempts, engine.ErrDeadLettered, err)
		})
	}, nil
}

// deadLetterMessage builds the copy of msg that goes to the dead-letter stream.
// generation is how many times msg has been redriven.
func deadLetterMessage(cfg DeadLetterConfig, msg engine.Message, cause error, attempts, generation int) engine.Message {
	headers := make(map[string]string, len(msg.Headers)+9)
	maps.Copy(headers, msg.Headers)
	headers[engine.HeaderDeadLetterError] = cause.Error()
	headers[engine.HeaderDeadLetterStream] = msg.Stream
	headers[engine.HeaderDeadLetterHandler] = cfg.Handler
	headers[engine.HeaderDeadLetterAttempts] = strconv.Itoa(attempts)
	headers[engine.HeaderDeadLetterEventID] = msg.ID
	headers[engine.HeaderDeadLetterSequence] = strconv.FormatUint(msg.Sequence, 10)
	if msg.Key != "" {
		headers[engine.HeaderDeadLetterKey] = msg.Key
		headers[engine.HeaderDeadLetterVersion] = strconv.FormatUint(msg.Version, 10)
	}
	id := deadLetterID(cfg.Handler, msg.Stream, msg.ID)
	if generation > 0 {
		headers[engine.HeaderDeadLetterRedrives] = strconv.Itoa(generation)
		id = deadLetterID(cfg.Handler, msg.Stream, msg.ID+"\x00"+strconv.Itoa(generation))
	}
	return engine.Message{
		ID:            id,
		Name:          msg.Name,
		Stream:        cfg.Stream,
		Time:          time.Now(),
		Headers:       headers,
		CorrelationID: msg.CorrelationID,
		CausationID:   msg.ID,
		ContentType:   msg.ContentType,
		// Payload is read-only by contract, so sharing it is safe.
		Payload: msg.Payload,
	}
}

// deadLetterID is the same for every failure of one event in one handler.
// NUL separators keep ("a","bc") and ("ab","c") apart.
func deadLetterID(handler, stream, id string) string {
	return uuid.NewSHA1(deadLetterNamespace, []byte(handler+"\x00"+stream+"\x00"+id)).String()
}
