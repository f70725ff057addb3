package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// ErrNotRunning is returned when a redrive names a projection or reactor that
// waits for its stream or pipeline, so it has no pipeline to deliver through.
var ErrNotRunning = errors.New("not running")

// ErrStandby is returned by a redrive on a standby engine (Config.Standby):
// the projection or reactor runs on the replica that leads, which alone
// can hand it its dead letters.
var ErrStandby = errors.New("this replica is standing by: the projections and reactors run on the leader")

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
	target, err := e.projectionRedriveTarget(name)
	if err != nil {
		return 0, err
	}
	return e.redrive(ctx, target, ids)
}

// RedriveReactor hands the reactor's dead letters to its lanes again, as
// RedriveProjection does for a projection, and returns how many it handed:
// each is delivered through the reactor's current chain, to it alone, in
// its lane after the events the lane holds already (so after the events of
// its key accepted so far, with KeyOrdered). It returns once they are
// handed, not delivered; one that fails again is dead-lettered again.
//
// A redrive is recorded in the reactor's checkpoint record once its
// delivery has ended, so one that the manager stops before (or a restart
// interrupts) is delivered again by a later redrive: at least once, as
// every reactor delivery is. A dead letter handed already is not handed
// again while the reactor runs. An unknown reactor is ErrReactorNotFound,
// one that waits for a stream or pipeline ErrNotRunning.
//
// It does not take redriveMu: the reactor itself refuses a dead letter
// handed already, and a redrive that waits for room in full lanes must not
// hold up the redrives of projections.
func (e *Engine) RedriveReactor(ctx context.Context, name string, ids []string) (int, error) {
	target, err := e.reactorRedriveTarget(name)
	if err != nil {
		return 0, err
	}
	return e.redrive(ctx, target, ids)
}

// redriveTarget is the handler a redrive delivers to.
type redriveTarget struct {
	// kind and name say what it is, in logs and errors.
	kind, name string
	// handler is the name its dead letters carry (x-dead-letter-handler);
	// record names the read model checkpoint that holds its redrive marks.
	handler, record string
	// deadLetters maps each stream it reads to its dead-letter stream.
	deadLetters map[string]string
	// reached reports whether it has handled the event seq of stream
	// source; one it has not reached comes in its turn, so no redrive.
	reached func(ctx context.Context, source string, seq uint64) (bool, error)
	// deliver hands it msg as the redrive rd, and reports whether it did.
	deliver func(ctx context.Context, msg engine.Message, rd engine.Redrive) (bool, error)
}

// redrive delivers target's dead letters not redriven yet, all or those
// whose original ids are in ids, and returns how many it delivered.
func (e *Engine) redrive(ctx context.Context, target redriveTarget, ids []string) (int, error) {
	marks, err := e.cfg.ReadModels.Checkpoint(ctx, target.record)
	if err != nil {
		return 0, fmt.Errorf("read redrive records of %s %q: %w", target.kind, target.name, err)
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
			if dl.Header(engine.HeaderDeadLetterHandler) != target.handler || target.deadLetters[source] != dead {
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
			if reached, err := target.reached(ctx, source, msg.Sequence); err != nil || !reached {
				return err
			}
			generation, _ := strconv.Atoi(dl.Header(engine.HeaderDeadLetterRedrives))
			rd := engine.Redrive{Generation: generation + 1, Mark: mark, Seq: dl.Sequence}
			delivered, err := target.deliver(engine.WithRedrive(ctx, rd), msg, rd)
			if err != nil {
				return fmt.Errorf("redrive event %q of stream %q: %w", msg.ID, source, err)
			}
			if delivered {
				n++
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	if n > 0 {
		e.cfg.Logger.Info("dead letters redriven", target.kind, target.name, "count", n)
	}
	return n, nil
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

// deadLettersOf maps each of streams that exists to its dead-letter
// stream. Callers hold e.mu.
func (e *Engine) deadLettersOf(streams []string) map[string]string {
	out := make(map[string]string, len(streams))
	for _, s := range streams {
		if st, ok := e.stream(s); ok {
			out[s] = st.spec.DeadLetterStream
		}
	}
	return out
}

// projectionRedriveTarget finds the runner a redrive of the named
// projection goes to: the one whose read model queries read, or, while that
// one only answers queries after a restart (see resumeRebuild), the rebuild
// that replaces it. The router runs the redrive under the route's lock, and
// the projection records it with the event's effect, or, when the event
// does not reach the read model, in settle.
func (e *Engine) projectionRedriveTarget(name string) (redriveTarget, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.projections[name]
	if !ok && e.standby.hasProjection(name) {
		return redriveTarget{}, fmt.Errorf("projection %q: %w", name, ErrStandby)
	}
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
	route, proj := r.spec.Name, r.proj
	return redriveTarget{
		kind: "projection", name: name, handler: name, record: route,
		deadLetters: e.deadLettersOf(r.spec.Streams),
		reached: func(_ context.Context, source string, seq uint64) (bool, error) {
			return seq <= proj.Checkpoint()[source], nil
		},
		deliver: func(ctx context.Context, msg engine.Message, rd engine.Redrive) (bool, error) {
			err := e.router.Redeliver(ctx, route, msg, func(ctx context.Context, outcome error) error {
				if outcome == nil {
					return nil // the projection recorded it with the event
				}
				if errors.Is(outcome, engine.ErrDeadLettered) && e.cfg.Metrics != nil {
					e.cfg.Metrics.RecordDeadLetter(name, msg.Stream)
				}
				return proj.MarkRedriven(ctx, rd)
			})
			return err == nil, err
		},
	}, nil
}

// reactorRedriveTarget is the named reactor's lanes. The reactor counts a
// redrive that fails again as it counts its dead letters.
func (e *Engine) reactorRedriveTarget(name string) (redriveTarget, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.reactors[name]
	if !ok && e.standby.hasReactor(name) {
		return redriveTarget{}, fmt.Errorf("reactor %q: %w", name, ErrStandby)
	}
	if !ok {
		return redriveTarget{}, fmt.Errorf("%w: %q", ErrReactorNotFound, name)
	}
	if st.waiting != nil {
		return redriveTarget{}, fmt.Errorf("%w: reactor %q: %w", ErrNotRunning, name, st.waiting)
	}
	handler, rx := ReactorHandlerName(name), st.rx
	return redriveTarget{
		kind: "reactor", name: name, handler: handler, record: handler,
		deadLetters: e.deadLettersOf(st.spec.Streams),
		reached: func(ctx context.Context, source string, seq uint64) (bool, error) {
			accepted, err := rx.Position(ctx, source)
			return seq <= accepted, err
		},
		deliver: func(ctx context.Context, msg engine.Message, rd engine.Redrive) (bool, error) {
			return rx.Redeliver(ctx, msg, rd, func(ctx context.Context) error {
				return e.cfg.ReadModels.Apply(ctx, handler, nil, readmodel.Checkpoint{rd.Mark: rd.Seq})
			})
		},
	}, nil
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
