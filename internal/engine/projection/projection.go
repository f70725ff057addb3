// Package projection is the read side of the engine: it folds a stream's
// events into a read model, saving each change together with the
// projection's checkpoint so that redelivery never applies an event twice.
package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/celexpr"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

// Projection folds events into one read model. It is the innermost
// engine.Handler of its route. Handle and Settle are called by one goroutine
// at a time (the route's); Checkpoint and Stats may be called from any.
type Projection struct {
	spec   Spec
	store  readmodel.Store
	key    *celexpr.Program    // nil when spec.Key is fixed
	events map[string]struct{} // nil when every event name is wanted
	// reduce and initial fold the events of a Reduce read model; initial
	// is shared by every new key and never changed.
	reduce  *celexpr.Reducer
	initial any

	processed    atomic.Uint64
	deadLettered atomic.Uint64

	// positions is the checkpoint of each stream the spec names. The map is
	// built by New and only read afterwards, so the per-event lookup takes no
	// lock; the values are atomics because Stats reads them concurrently.
	positions map[string]*atomic.Uint64

	// saveMu guards the scratch space save reuses on every event (the store
	// keeps neither the changes slice nor the checkpoint map it is given):
	// one single-entry checkpoint per stream, so no map is cleared or built.
	saveMu          sync.Mutex
	saveChanges     [1]readmodel.Change
	saveCheckpoints map[string]readmodel.Checkpoint
}

// New validates spec, compiles its expressions and loads the checkpoint
// saved in store, so a projection rebuilt after a restart carries on where
// it stopped.
func New(spec Spec, store readmodel.Store) (*Projection, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	p := &Projection{spec: spec.clone(), store: store}
	var err error
	if spec.KeyExpression != "" {
		if p.key, err = celexpr.CompileKey(spec.KeyExpression); err != nil {
			return nil, fmt.Errorf("projection %q: keyExpression %q: %w", spec.Name, spec.KeyExpression, err)
		}
	}
	if spec.Type == Reduce {
		if p.initial, err = celexpr.EvalInitial(spec.Reducer.Initial); err != nil {
			return nil, fmt.Errorf("projection %q: readModel.reduce.initial %q: %w", spec.Name, spec.Reducer.Initial, err)
		}
		if p.reduce, err = celexpr.CompileReduce(spec.Reducer.Expression); err != nil {
			return nil, fmt.Errorf("projection %q: readModel.reduce.expression %q: %w", spec.Name, spec.Reducer.Expression, err)
		}
	}
	if len(spec.EventNames) > 0 {
		p.events = make(map[string]struct{}, len(spec.EventNames))
		for _, n := range spec.EventNames {
			p.events[n] = struct{}{}
		}
	}
	// New has no caller context; loading a checkpoint is one local read.
	cp, err := store.Checkpoint(context.Background(), spec.Name)
	if err != nil {
		return nil, fmt.Errorf("projection %q: load checkpoint: %w", spec.Name, err)
	}
	p.positions = make(map[string]*atomic.Uint64, len(spec.Streams))
	p.saveCheckpoints = make(map[string]readmodel.Checkpoint, len(spec.Streams))
	for _, s := range spec.Streams {
		pos := &atomic.Uint64{}
		pos.Store(cp[s])
		p.positions[s] = pos
		p.saveCheckpoints[s] = readmodel.Checkpoint{s: 0}
	}
	return p, nil
}

// Spec returns the spec the projection was built from.
func (p *Projection) Spec() Spec { return p.spec.clone() }

// Handle folds msg into the read model and saves its sequence as the
// checkpoint of its stream in the same store operation.
//
// It returns engine.ErrSkip for a message at or below the checkpoint
// (already applied, so redelivery is harmless) and for an event name the
// spec does not list; the router then calls Settle. A key or reduce
// expression that fails on msg (or goes over its cost limit), or a payload
// that was never decoded, is engine.Permanent: retrying cannot fix it, and
// the key's value stays as it was. A store error is returned as it is, to
// be retried.
//
// A redrive (engine.RedriveOf) is the other way round: an event the
// checkpoint has passed, applied now on top of what came since, with the
// redrive's mark saved in the same store operation and the checkpoint left
// where it is. One the checkpoint has not reached is skipped: it comes in
// its turn.
func (p *Projection) Handle(ctx context.Context, msg engine.Message) ([]engine.Message, error) {
	redrive, redriven := engine.RedriveOf(ctx)
	if passed := msg.Sequence <= p.checkpointOf(msg.Stream); passed != redriven {
		return nil, engine.ErrSkip
	}
	if p.events != nil {
		if _, ok := p.events[msg.Name]; !ok {
			return nil, engine.ErrSkip
		}
	}
	change, err := p.change(ctx, msg)
	if err != nil {
		return nil, err
	}
	if redriven {
		err = p.saveRedrive(ctx, &change, msg, redrive)
	} else {
		err = p.save(ctx, &change, msg)
	}
	if err != nil {
		return nil, err
	}
	p.processed.Add(1)
	return nil, nil
}

// saveRedrive applies change with the redrive's mark in one store
// operation; the checkpoint stays, as later events are applied already.
func (p *Projection) saveRedrive(ctx context.Context, change *readmodel.Change, msg engine.Message, r engine.Redrive) error {
	if _, ok := p.positions[msg.Stream]; !ok {
		return engine.Permanentf("projection %q: event %s comes from stream %q, which the projection does not read",
			p.spec.Name, msg.ID, msg.Stream)
	}
	err := p.store.Apply(ctx, p.spec.Name, []readmodel.Change{*change}, readmodel.Checkpoint{r.Mark: r.Seq})
	return p.saveError(err, msg)
}

// MarkRedriven records that a dead letter was redriven and ended without
// reaching the read model (skipped, or dead-lettered again).
func (p *Projection) MarkRedriven(ctx context.Context, r engine.Redrive) error {
	if err := p.store.Apply(ctx, p.spec.Name, nil, readmodel.Checkpoint{r.Mark: r.Seq}); err != nil {
		return fmt.Errorf("projection %q: record redrive: %w", p.spec.Name, err)
	}
	return nil
}

// change builds the read model change for msg.
func (p *Projection) change(ctx context.Context, msg engine.Message) (readmodel.Change, error) {
	key := p.spec.Key
	if p.key != nil {
		k, err := p.key.Key(ctx, msg)
		if err != nil {
			if ctx.Err() != nil {
				return readmodel.Change{}, err // cancelled, not the event's fault
			}
			return readmodel.Change{}, engine.Permanent(fmt.Errorf("projection %q: %w", p.spec.Name, err))
		}
		key = k
	}
	switch p.spec.Type {
	case Reduce:
		return p.fold(ctx, key, msg)
	case Append, Latest:
		// The payload is what these read models keep: a JSON payload as its
		// own text, any other as its decoded value, which must be there.
		if msg.Value == nil && len(msg.Payload) > 0 && msg.ContentType != serde.JSON {
			return readmodel.Change{}, engine.Permanentf(
				"projection %q: payload was not decoded: the pipeline needs Deserialize", p.spec.Name)
		}
		value, err := documentValue(msg)
		if err != nil {
			return readmodel.Change{}, engine.Permanent(fmt.Errorf("projection %q: %w", p.spec.Name, err))
		}
		if p.spec.Type == Append {
			return readmodel.Change{Key: key, Op: readmodel.OpAppend, Value: value}, nil
		}
		return readmodel.Change{Key: key, Op: readmodel.OpSet, Value: value}, nil
	default: // Count; Validate admits no other type
		return readmodel.Change{Key: key, Op: readmodel.OpIncrement, Delta: 1}, nil
	}
}

// fold gives the change of a Reduce read model: the key's next state,
// from its current one (initial for a new key) and msg.
func (p *Projection) fold(ctx context.Context, key string, msg engine.Message) (readmodel.Change, error) {
	if msg.Value == nil && len(msg.Payload) > 0 {
		return readmodel.Change{}, engine.Permanentf(
			"projection %q: payload was not decoded: the pipeline needs Deserialize", p.spec.Name)
	}
	state, err := p.state(ctx, key)
	if err != nil {
		return readmodel.Change{}, err
	}
	next, err := p.reduce.Next(ctx, state, msg)
	if err != nil {
		if ctx.Err() != nil {
			return readmodel.Change{}, err
		}
		return readmodel.Change{}, engine.Permanent(fmt.Errorf("projection %q: readModel.reduce: %w", p.spec.Name, err))
	}
	return readmodel.Change{Key: key, Op: readmodel.OpSet, Value: next}, nil
}

// state is the key's current state in the read model, decoded as the
// engine decodes JSON (whole numbers are int64), or the initial state for a
// key without one. A store error is returned as it is, to be retried.
func (p *Projection) state(ctx context.Context, key string) (any, error) {
	b, found, err := p.store.Value(ctx, p.spec.Name, key)
	if err != nil {
		return nil, fmt.Errorf("projection %q: read the state of key %q: %w", p.spec.Name, key, err)
	}
	if !found {
		return p.initial, nil
	}
	state, err := stateDecoder.Decode(b)
	if err != nil {
		// Text the store gave back that is not JSON: no retry mends it.
		return nil, engine.Permanent(fmt.Errorf("projection %q: decode the state of key %q: %w", p.spec.Name, key, err))
	}
	return state, nil
}

// stateDecoder reads a key's state back as every JSON payload is decoded.
var stateDecoder, _ = serde.NewJSONDecoder(serde.Schema{}) // JSON takes no schema: never fails

// Settle records a message that ended without reaching the read model:
// skipped (by Filter, Dedupe or the event names) or dead-lettered. Its
// sequence becomes the stream's checkpoint so it is not replayed, and it is
// counted as processed or dead-lettered. A message at or below the
// checkpoint was settled before and is ignored.
func (p *Projection) Settle(ctx context.Context, msg engine.Message, deadLettered bool) error {
	if msg.Sequence <= p.checkpointOf(msg.Stream) {
		return nil
	}
	if err := p.save(ctx, nil, msg); err != nil {
		return err
	}
	if deadLettered {
		p.deadLettered.Add(1)
	} else {
		p.processed.Add(1)
	}
	return nil
}

// save applies changes and msg's sequence as its stream's checkpoint in one
// store operation, then advances the checkpoint held in memory.
func (p *Projection) save(ctx context.Context, change *readmodel.Change, msg engine.Message) error {
	pos, ok := p.positions[msg.Stream]
	if !ok {
		return engine.Permanentf("projection %q: event %s comes from stream %q, which the projection does not read",
			p.spec.Name, msg.ID, msg.Stream)
	}
	p.saveMu.Lock()
	var changes []readmodel.Change
	if change != nil {
		p.saveChanges[0] = *change
		changes = p.saveChanges[:]
	}
	cp := p.saveCheckpoints[msg.Stream]
	cp[msg.Stream] = msg.Sequence
	err := p.store.Apply(ctx, p.spec.Name, changes, cp)
	p.saveChanges[0] = readmodel.Change{} // hold no payload
	p.saveMu.Unlock()
	if err != nil {
		return p.saveError(err, msg)
	}
	pos.Store(msg.Sequence)
	return nil
}

// saveError says which event a store error of Apply was about, nil for nil.
func (p *Projection) saveError(err error, msg engine.Message) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, readmodel.ErrTypeClash) {
		// The read model holds a value of another shape under this key
		// (written by an earlier spec); retrying cannot change that.
		err = engine.Permanent(err)
	}
	return fmt.Errorf("projection %q: save event %s/%d: %w", p.spec.Name, msg.Stream, msg.Sequence, err)
}

// MoveTo makes the projection's read model and checkpoint those of the
// projection named name, replacing what that one had (readmodel.Store.Move),
// and goes on under that name. A read model rebuilt under a name of its own
// takes the place of the one queries read this way, at once. Handle and
// Settle must not run meanwhile.
func (p *Projection) MoveTo(ctx context.Context, name string) error {
	if err := p.store.Move(ctx, p.spec.Name, name); err != nil {
		return fmt.Errorf("projection %q: %w", p.spec.Name, err)
	}
	p.spec.Name = name
	return nil
}

// checkpointOf is the last sequence of stream applied or settled; 0 for a
// stream the projection does not read.
func (p *Projection) checkpointOf(stream string) uint64 {
	if pos, ok := p.positions[stream]; ok {
		return pos.Load()
	}
	return 0
}

// Checkpoint returns the last sequence applied or settled, per stream; a
// stream with nothing settled yet is absent.
func (p *Projection) Checkpoint() readmodel.Checkpoint {
	cp := make(readmodel.Checkpoint, len(p.positions))
	for s, pos := range p.positions {
		if n := pos.Load(); n > 0 {
			cp[s] = n
		}
	}
	return cp
}

// Stats returns the projection's counters and checkpoint.
func (p *Projection) Stats() Stats {
	return Stats{
		Processed:    p.processed.Load(),
		DeadLettered: p.deadLettered.Load(),
		Checkpoint:   p.Checkpoint(),
	}
}

var _ engine.Handler = (*Projection)(nil)

// documentValue is what the read model keeps of msg: its payload as compact
// JSON text rather than the decoded value. Read models are JSON documents
// and live long, and a decoded object costs ten times its JSON in memory
// (a map, its keys, boxed values), which for a large Append model is most of
// the heap. A JSON payload is its own text (Deserialize has decoded it, so it
// is valid); other formats are encoded from the decoded value.
func documentValue(msg engine.Message) (any, error) {
	if msg.ContentType == serde.JSON && len(msg.Payload) > 0 {
		return json.RawMessage(msg.Payload), nil
	}
	b, err := json.Marshal(msg.Value)
	if err != nil {
		return nil, fmt.Errorf("encode payload of event %s/%d as JSON: %w", msg.Stream, msg.Sequence, err)
	}
	return json.RawMessage(b), nil
}
