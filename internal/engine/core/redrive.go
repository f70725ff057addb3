package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

// ErrNotRunning is returned when a redrive names a projection that waits for its stream or
// pipeline, so it has no pipeline to deliver through.
var ErrNotRunning = errors.New("not running")

// redriveMarkPrefix starts the checkpoint entries that record redriven dead
// letters. A stream name never starts with a NUL, so no entry is taken for a
// stream's checkpoint.
const redriveMarkPrefix = "\x00redriven/"

// redriveMark names the record of one redriven dead letter.
func redriveMark(deadLetterStream, deadLetterID string) string {
	return redriveMarkPrefix + deadLetterStream + "/" + deadLetterID
}

// redrivePage is how many dead letters one read of a dead-letter stream takes.
const redrivePage = 256

// RedriveProjection delivers the projection's dead letters again through its
// current chain, to it alone, and returns how many it delivered: those whose
// original event ids are in ids, or all when ids is nil, that have not been
// redriven yet. Each is applied on top of the read model as it is now; one
// that fails again is dead-lettered again (a new dead letter, for a later
// redrive).
//
// Which dead letters were redriven is recorded in the read model's
// checkpoint, in the same store operation as the event's effect, so a
// redrive is applied once, also across restarts with durable storage. The
// records go with the read model: a rebuild or a removal of the projection
// starts without them. An unknown projection is ErrProjectionNotFound, one
// that waits for its stream or pipeline ErrNotRunning.
func (e *Engine) RedriveProjection(ctx context.Context, name string, ids []string) (int, error) {
	e.redriveMu.Lock()
	defer e.redriveMu.Unlock()

	target, err := e.redriveTarget(name)
	if err != nil {
		return 0, err
	}
	marks, err := e.cfg.ReadModels.Checkpoint(ctx, target.route)
	if err != nil {
		return 0, fmt.Errorf("read redrive records of projection %q: %w", name, err)
	}
	var wanted map[string]bool
	if ids != nil {
		wanted = make(map[string]bool, len(ids))
		for _, id := range ids {
			wanted[id] = true
		}
	}
	n := 0
	for _, dead := range target.deadLetterStreams() {
		err := e.scanDeadLetters(ctx, dead, func(dl engine.Message) error {
			source := dl.Header(engine.HeaderDeadLetterStream)
			mark := redriveMark(dead, dl.ID)
			if dl.Header(engine.HeaderDeadLetterHandler) != name || target.deadLetters[source] != dead {
				return nil
			}
			if _, done := marks[mark]; done {
				return nil
			}
			if wanted != nil && !wanted[dl.Header(engine.HeaderDeadLetterEventID)] {
				return nil
			}
			msg, err := e.original(ctx, dl)
			if err != nil {
				return err
			}
			if msg.Sequence > target.proj.Checkpoint()[source] {
				return nil // not reached yet: the projection gets it in its turn
			}
			generation, _ := strconv.Atoi(dl.Header(engine.HeaderDeadLetterRedrives))
			redrive := engine.Redrive{Generation: generation + 1, Mark: mark, Seq: dl.Sequence}
			err = e.router.Redeliver(engine.WithRedrive(ctx, redrive), target.route, msg,
				func(ctx context.Context, outcome error) error {
					if outcome == nil {
						return nil // the projection recorded it with the event
					}
					if errors.Is(outcome, engine.ErrDeadLettered) && e.cfg.Metrics != nil {
						e.cfg.Metrics.RecordDeadLetter(name, source)
					}
					return target.proj.MarkRedriven(ctx, redrive)
				})
			if err != nil {
				return fmt.Errorf("redrive event %q of stream %q: %w", msg.ID, source, err)
			}
			n++
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	if n > 0 {
		e.cfg.Logger.Info("dead letters redriven", "projection", name, "count", n)
	}
	return n, nil
}

// redriveTarget is what a redrive of one projection delivers to.
type redriveTarget struct {
	// route names the runner's route and read model.
	route string
	proj  *projection.Projection
	// deadLetters maps each stream the projection reads to its
	// dead-letter stream.
	deadLetters map[string]string
}

// deadLetterStreams are the target's dead-letter streams, each once, in order.
func (t redriveTarget) deadLetterStreams() []string {
	var out []string
	for _, d := range t.deadLetters {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// redriveTarget finds the runner a redrive of the named projection goes to:
// the one whose read model queries read, or, while that one only answers
// queries after a restart (see resumeRebuild), the rebuild that replaces it.
func (e *Engine) redriveTarget(name string) (redriveTarget, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.projections[name]
	if !ok {
		return redriveTarget{}, fmt.Errorf("%w: %q", ErrProjectionNotFound, name)
	}
	r := st.serving
	if r.paused {
		r = st.rebuild
	}
	if r.waiting != nil {
		return redriveTarget{}, fmt.Errorf("%w: projection %q: %w", ErrNotRunning, name, r.waiting)
	}
	t := redriveTarget{route: r.spec.Name, proj: r.proj, deadLetters: make(map[string]string, len(r.spec.Streams))}
	for _, s := range r.spec.Streams {
		if st, ok := e.stream(s); ok {
			t.deadLetters[s] = st.spec.DeadLetterStream
		}
	}
	return t, nil
}

// scanDeadLetters calls f with every stored event of the dead-letter stream,
// in order, until f fails.
func (e *Engine) scanDeadLetters(ctx context.Context, dead string, f func(engine.Message) error) error {
	var after uint64
	for {
		page, err := e.cfg.Store.Read(ctx, dead, after, redrivePage)
		if err != nil {
			return fmt.Errorf("read dead-letter stream %q: %w", dead, err)
		}
		for _, m := range page {
			if err := f(m); err != nil {
				return err
			}
			after = m.Sequence
		}
		if len(page) < redrivePage {
			return nil
		}
	}
}

// original returns the event a dead letter is a copy of: as its stream
// stores it, or, when retention has removed it there, rebuilt from the copy
// (whose time is when it was dead-lettered).
func (e *Engine) original(ctx context.Context, dl engine.Message) (engine.Message, error) {
	source := dl.Header(engine.HeaderDeadLetterStream)
	id := dl.Header(engine.HeaderDeadLetterEventID)
	seq, err := strconv.ParseUint(dl.Header(engine.HeaderDeadLetterSequence), 10, 64)
	if err != nil || seq == 0 || id == "" {
		return engine.Message{}, fmt.Errorf("dead letter %q of stream %q: no valid original sequence and id", dl.ID, dl.Stream)
	}
	stored, err := e.cfg.Store.Read(ctx, source, seq-1, 1)
	if err != nil {
		return engine.Message{}, fmt.Errorf("read event %d of stream %q: %w", seq, source, err)
	}
	if len(stored) == 1 && stored[0].Sequence == seq && stored[0].ID == id {
		return stored[0], nil
	}
	msg := dl
	msg.ID, msg.Stream, msg.Sequence, msg.Position = id, source, seq, 0
	msg.CausationID = ""
	msg.Headers = make(map[string]string, len(dl.Headers))
	for k, v := range dl.Headers {
		if !strings.HasPrefix(k, "x-dead-letter-") {
			msg.Headers[k] = v
		}
	}
	msg.Key = dl.Header(engine.HeaderDeadLetterKey)
	if msg.Key != "" {
		msg.Version, _ = strconv.ParseUint(dl.Header(engine.HeaderDeadLetterVersion), 10, 64)
	}
	return msg, nil
}
