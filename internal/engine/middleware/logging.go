package middleware

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// Logging logs each message the next handler handles.
//
// A per-event line (stream, sequence, id, name, duration) is written at level
// only when the logger has that level enabled; the check comes first, so a
// disabled level costs neither a clock read nor a record. A failure is always
// logged at slog.LevelError with the error and the attempts made; it carries a
// duration only when level is enabled too. Skipped and dead-lettered outcomes
// settle the message, so they are logged at level, not as errors. Every line
// carries the handler name. A nil logger means slog.Default().
func Logging(logger *slog.Logger, level slog.Level, handler string) engine.Middleware {
	if logger == nil {
		logger = slog.Default()
	}
	// With renders the handler attribute once instead of once per line.
	logger = logger.With(slog.String("handler", handler))
	return func(next engine.Handler) engine.Handler {
		return engine.HandlerFunc(func(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
			enabled := logger.Enabled(ctx, level)
			var start time.Time
			if enabled {
				start = time.Now()
			}
			out, err := next.Handle(ctx, msg)
			switch {
			case err == nil:
				if enabled {
					logger.LogAttrs(ctx, level, "event handled",
						slog.String("stream", msg.Stream),
						slog.Uint64("sequence", msg.Sequence),
						slog.String("id", msg.ID),
						slog.String("name", msg.Name),
						slog.Duration("duration", time.Since(start)))
				}
			case errors.Is(err, engine.ErrSkip):
				if enabled {
					logOutcome(ctx, logger, level, "event skipped", msg, time.Since(start), err)
				}
			case errors.Is(err, engine.ErrDeadLettered):
				if enabled {
					logOutcome(ctx, logger, level, "event dead-lettered", msg, time.Since(start), err)
				}
			default:
				attrs := make([]slog.Attr, 0, 8)
				attrs = append(attrs,
					slog.String("stream", msg.Stream),
					slog.Uint64("sequence", msg.Sequence),
					slog.String("id", msg.ID),
					slog.String("name", msg.Name))
				if enabled {
					attrs = append(attrs, slog.Duration("duration", time.Since(start)))
				}
				attrs = append(attrs, slog.Int("attempts", engine.Attempts(err)), slog.Any("error", err))
				logger.LogAttrs(ctx, slog.LevelError, "event handler failed", attrs...)
			}
			return out, err
		})
	}
}

// logOutcome writes the line for a message that was settled without being
// handled (skipped or dead-lettered); reason says why.
func logOutcome(
	ctx context.Context, logger *slog.Logger, level slog.Level, text string, msg engine.Message, d time.Duration, reason error,
) {
	logger.LogAttrs(ctx, level, text,
		slog.String("stream", msg.Stream),
		slog.Uint64("sequence", msg.Sequence),
		slog.String("id", msg.ID),
		slog.String("name", msg.Name),
		slog.Duration("duration", d),
		slog.String("reason", reason.Error()))
}
