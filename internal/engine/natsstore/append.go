package natsstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	engbackoff "github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/backoff"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/groupcommit"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/versions"
)

// maxAppend is the most events one append may hold: JetStream's limit on
// an atomic batch (docs/limits.md: events in one batch).
const maxAppend = maxBatch

// Append implements eventstore.Store.
func (s *EventStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion,
	events []engine.Message) (eventstore.AppendResult, error) {
	return s.AppendNew(ctx, stream, expected, events, nil)
}

// AppendNew is Append for a caller that knows which IDs it generated
// itself (fresh[i]): those cannot be held by the stream already, so the
// index is not asked about them. A nil fresh asks about every ID.
func (s *EventStore) AppendNew(ctx context.Context, stream string, expected eventstore.ExpectedVersion,
	events []engine.Message, fresh []bool) (eventstore.AppendResult, error) {
	if err := s.check(); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := eventstore.ValidateAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if len(events) > maxAppend {
		return eventstore.AppendResult{}, fmt.Errorf("%w to stream %q: %d events, at most %d in one append on NATS",
			eventstore.ErrInvalidAppend, stream, len(events), maxAppend)
	}
	return s.append(ctx, &appendReq{expected: expected, events: events, fresh: fresh}, stream)
}

// AppendAccepted implements core.Appender: the events Ingest accepted go
// straight into the stream, the condition checked by the same
// compare-and-set that numbers them.
func (s *EventStore) AppendAccepted(ctx context.Context, stream string, msgs []engine.Message, generated []bool,
	expect versions.Expect) ([]engine.Message, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := eventstore.ValidateAppend(stream, eventstore.Any, msgs); err != nil {
		return nil, err
	}
	res, err := s.append(ctx, &appendReq{expected: eventstore.Any, events: msgs, fresh: generated, expect: expect}, stream)
	return res.Events, err
}

func (s *EventStore) append(ctx context.Context, r *appendReq, stream string) (eventstore.AppendResult, error) {
	st := s.stream(stream)
	if err := s.create(ctx, st); err != nil {
		return eventstore.AppendResult{}, unavailable(err)
	}
	if err := st.w.pipe.Commit(ctx, r); err != nil {
		if errors.Is(err, groupcommit.ErrClosed) {
			return eventstore.AppendResult{}, eventstore.ErrClosed
		}
		return eventstore.AppendResult{}, unavailable(err)
	}
	return r.res, nil
}

// appendReq is one Append waiting in its stream's group.
type appendReq struct {
	expected eventstore.ExpectedVersion
	events   []engine.Message
	fresh    []bool
	// expect is a condition on the version of the events' one key, checked
	// before they are numbered (AppendAccepted); versions.Any for none.
	expect versions.Expect
	res    eventstore.AppendResult
}

// streamWriter appends to one stream. Appends of this process go through one
// group-commit pipeline: those that arrive together share one atomic
// batch publish. Other processes may append to the same stream; every
// batch expects the stream's last sequence to be the one this streamWriter knows
// (Nats-Expected-Last-Sequence), so a batch planned on stale knowledge is
// refused, the streamWriter reads what the others appended, and plans again.
// That one compare-and-set is what keeps sequences gapless, key versions
// exact and IDs unique across processes.
//
// The streamWriter also keeps the ID index: after each batch it publishes an
// entry per event, and once those are acknowledged, the watermark. A
// streamWriter that starts (or whose index publish failed) reads the events
// above the watermark and indexes them first, so an ID is always in the
// index or above the watermark, whoever appended it and whatever crashed.
type streamWriter struct {
	s    *EventStore
	st   *esStream
	pipe *groupcommit.Pipeline[*appendReq]

	// Only the committer touches these.
	ready   bool
	known   uint64            // every event up to here is known and indexed (or being indexed)
	keys    map[string]uint64 // key versions at known
	ids     map[string]uint64 // IDs of events since the watermark this streamWriter started from
	pending []jetstream.PubAckFuture
	mark    uint64 // the watermark to publish once pending is acknowledged
}

func newStreamWriter(s *EventStore, st *esStream) *streamWriter {
	w := &streamWriter{s: s, st: st}
	w.pipe = groupcommit.New(groupcommit.Env[*appendReq]{Write: w.write}, groupcommit.Options{Yield: true})
	return w
}

func (w *streamWriter) close() {
	w.pipe.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.finishIndex(ctx)
}

// write commits one group: plan every append against what the streamWriter
// knows, publish the planned events as atomic batches, and on a
// compare-and-set failure learn what others appended and plan again.
func (w *streamWriter) write(g *groupcommit.Group[*appendReq]) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), w.s.c.opts.Timeout)
	defer cancel()
	if err := w.finishIndex(ctx); err != nil {
		w.ready = false
	}
	if !w.ready {
		if err := w.start(ctx); err != nil {
			return err
		}
	}
	reqs := g.Writes()
	outcome := make([]error, len(reqs))
	todo := reqs
	verified := false
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt > 100 {
			err := fmt.Errorf("natsstore: stream %q: other writers kept appending first; gave up after %d attempts", w.st.name, attempt)
			failRest(outcome, reqs, todo, err)
			break
		}
		p, err := w.plan(ctx, todo)
		if err != nil {
			failRest(outcome, reqs, todo, err)
			break
		}
		if p.refusals && !verified {
			// A refusal on stale knowledge would be wrong: learn what
			// others appended, then decide.
			if err := w.catchUp(ctx); err != nil {
				failRest(outcome, reqs, todo, err)
				break
			}
			verified = true
			continue
		}
		n, err := w.publish(ctx, p)
		for _, r := range todo[:n] {
			outcome[index(reqs, r)] = p.errs[r]
		}
		todo = todo[n:]
		if err == nil {
			continue
		}
		if incompleteBatch(err) {
			// Nothing of it was stored: plan and send it again shortly.
			if err := engbackoff.Sleep(ctx, 20*time.Millisecond); err != nil {
				failRest(outcome, reqs, todo, unavailable(err))
				break
			}
			continue
		}
		if wrongLast(err) {
			// Another replica appended first: learn what, then plan again.
			// After a few such rounds in a row, step aside for a moment
			// so that two busy replicas do not keep refusing each other.
			if attempt >= 2 {
				_ = engbackoff.Sleep(ctx, time.Duration(rand.Int64N(int64(attempt)*int64(time.Millisecond))))
			}
			err = w.catchUpTo(ctx, actualLast(err))
			verified = true
		} else {
			// Stored or not, the streamWriter cannot tell: learn it before the
			// next append plans anything.
			w.ready = false
		}
		if err != nil {
			failRest(outcome, reqs, todo, err)
			break
		}
	}
	stored := 0
	for i, err := range outcome {
		if err != nil {
			g.Fail(i, err)
		} else {
			stored++
		}
	}
	if observe := w.s.c.opts.ObserveEventsCommit; observe != nil && stored > 0 {
		observe(stored, time.Since(start))
	}
	return nil
}

func failRest(outcome []error, reqs, todo []*appendReq, err error) {
	for _, r := range todo {
		outcome[index(reqs, r)] = err
	}
}

// publish publishes the plan's appends in order, pipelined on the
// connection, and returns how many of them are done (stored, or refused by
// plan) and the error that stopped the rest.
//
// Every message carries an ID of its own, new for every publish, as
// Nats-Msg-Id. The first append sent while nothing is in flight expects
// the stream's last sequence to be the one the writer knows; if it holds,
// nothing was appended since, so the plan is exact. An append sent behind
// others still in flight expects both the sequence and the message ID of
// the last one planned before it (Nats-Expected-Last-Msg-Id): the sequence
// alone could hold by chance when an append before it failed and another
// replica appended as many events, and the plan it was made on would not;
// the message ID holds only if that very message was stored last. An
// atomic batch (an append of several events) cannot expect an ID: it waits
// until nothing is in flight. Idempotency by event ID is the plan's work
// (what the writer knows, the ID index), not JetStream's duplicate window.
func (w *streamWriter) publish(ctx context.Context, p *plan) (int, error) {
	if w.s.c.opts.Replicas > 1 {
		return w.publishBatches(ctx, p)
	}
	var flight []inFlight
	next, lastID := w.known, ""
	for ri, evs := range p.msgs {
		if len(evs) == 0 {
			continue
		}
		if len(evs) > 1 && len(flight) > 0 {
			if failed, err := w.settle(ctx, p, flight); err != nil {
				return failed, err
			}
			flight = flight[:0]
		}
		msgs := make([]*nats.Msg, len(evs))
		for i := range evs {
			m := &evs[i]
			msgs[i] = &nats.Msg{
				Subject: w.st.keySubject(m.Key),
				Data:    codec.AppendMessage(make([]byte, 0, codec.SizeHint(m)), m),
				Header:  nats.Header{"Nats-Msg-Id": []string{nuid.Next()}},
			}
		}
		msgs[0].Header.Set("Nats-Expected-Last-Sequence", strconv.FormatUint(next, 10))
		if len(flight) > 0 {
			msgs[0].Header.Set("Nats-Expected-Last-Msg-Id", lastID)
		}
		ack, err := w.send(msgs)
		if err != nil {
			flight = append(flight, inFlight{req: ri, err: err})
			break
		}
		next += uint64(len(evs))
		lastID = msgs[len(msgs)-1].Header.Get("Nats-Msg-Id")
		flight = append(flight, inFlight{req: ri, ack: ack, last: next})
	}
	if failed, err := w.settle(ctx, p, flight); err != nil {
		return failed, err
	}
	return len(p.reqs), nil
}

// publishBatches publishes the plan's appends as atomic batches of whole
// appends, up to the batch limit each, one after the other: each expects
// the stream's last sequence to be the one the writer knows, and is stored
// whole or not at all, so nothing is ever stored on a plan that an earlier
// refusal made stale. On a replicated stream JetStream stages a batch in
// memory, and an ID chain behind messages in flight is not answered
// reliably (nats-server 2.15.3, a cluster of three), so replicated
// streams take this path; a single-replica stream pipelines (publish).
func (w *streamWriter) publishBatches(ctx context.Context, p *plan) (int, error) {
	done := 0
	for done < len(p.reqs) {
		var msgs []*nats.Msg
		end := done
		for end < len(p.reqs) && (len(msgs) == 0 || len(msgs)+len(p.msgs[end]) <= maxAppend) {
			for i := range p.msgs[end] {
				m := &p.msgs[end][i]
				msgs = append(msgs, &nats.Msg{
					Subject: w.st.keySubject(m.Key),
					Data:    codec.AppendMessage(make([]byte, 0, codec.SizeHint(m)), m),
					Header:  nats.Header{"Nats-Msg-Id": []string{nuid.Next()}},
				})
			}
			end++
		}
		if len(msgs) == 0 {
			return end, nil
		}
		msgs[0].Header.Set("Nats-Expected-Last-Sequence", strconv.FormatUint(w.known, 10))
		last := w.known + uint64(len(msgs))
		ack, err := w.send(msgs)
		if err == nil {
			err = w.await(ctx, inFlight{ack: ack, last: last})
		}
		if err != nil {
			if !wrongLast(err) && !incompleteBatch(err) {
				w.ready = false // stored or not: learn it from the stream
			}
			return done, err
		}
		for i := done; i < end; i++ {
			w.learnStored(p.msgs[i], p.generated[i])
		}
		done = end
	}
	return done, nil
}

// inFlight is one append published and not yet acknowledged; err is set,
// and ack nil, for one whose publish failed.
type inFlight struct {
	req  int
	ack  jetstream.PubAckFuture
	err  error
	last uint64 // the stream's last sequence once it is stored
}

// send publishes one append's messages: alone, or as an atomic batch.
func (w *streamWriter) send(msgs []*nats.Msg) (jetstream.PubAckFuture, error) {
	if len(msgs) > 1 {
		id := nuid.Next()
		for i, m := range msgs {
			m.Header.Set(headerBatchID, id)
			m.Header.Set(headerBatchSq, strconv.Itoa(i+1))
			if i < len(msgs)-1 {
				if err := w.s.c.NC.PublishMsg(m); err != nil {
					return nil, fmt.Errorf("natsstore: publish: %w", err)
				}
			}
		}
		msgs[len(msgs)-1].Header.Set(headerCommit, "1")
	}
	f, err := w.s.c.JS.PublishMsgAsync(msgs[len(msgs)-1])
	if err != nil {
		return nil, fmt.Errorf("natsstore: publish: %w", err)
	}
	return f, nil
}

// settle waits for every acknowledgement in flight, in order, and takes in
// the appends stored. It returns the index in the plan of the first that
// failed, with its error: from it on none is stored (each expected what
// the one before it left). It waits for all, so nothing of the group is
// left in flight.
func (w *streamWriter) settle(ctx context.Context, p *plan, flight []inFlight) (int, error) {
	var failed error
	at := -1
	for _, f := range flight {
		err := f.err
		if err == nil {
			err = w.await(ctx, f)
		}
		if failed != nil {
			continue
		}
		if err != nil {
			failed, at = err, f.req
			if !wrongLast(err) && !incompleteBatch(err) {
				// Stored or not, the writer cannot tell: it learns it
				// from the stream before it plans again.
				w.ready = false
			}
			continue
		}
		w.learnStored(p.msgs[f.req], p.generated[f.req])
	}
	return at, failed
}

// await waits for one append's acknowledgement.
func (w *streamWriter) await(ctx context.Context, f inFlight) error {
	select {
	case ack := <-f.ack.Ok():
		// A duplicate is this very message sent twice (its ID is new for
		// every publish): stored once, where it should be.
		if ack.Sequence != f.last {
			return fmt.Errorf("natsstore: stream %q: an append stored up to %d, want %d", w.st.name, ack.Sequence, f.last)
		}
		return nil
	case err := <-f.ack.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// learnStored takes in events stored in order after w.known, by this
// streamWriter or another, and indexes their IDs.
//
// IDs the caller generated (generated[i]) get no index entry: nobody can
// have posted them before, and they cost JetStream a message each. A
// later post that names one explicitly is caught while this streamWriter or the
// stream's events above the watermark still hold it (docs/storage.md).
func (w *streamWriter) learnStored(evs []engine.Message, generated []bool) {
	for i := range evs {
		m := &evs[i]
		w.known = m.Sequence
		if m.Key != "" {
			w.keys[m.Key] = m.Version
		}
		w.ids[m.ID] = m.Sequence
		if generated != nil && generated[i] {
			continue
		}
		f, err := w.s.c.JS.PublishMsgAsync(&nats.Msg{Subject: w.st.idSubject(m.ID), Data: encodeUint(m.Sequence)})
		if err != nil {
			w.ready = false // the index may miss it: index again from the watermark
			continue
		}
		w.pending = append(w.pending, f)
	}
	w.mark = w.known
}

// catchUp reads what was appended after w.known.
func (w *streamWriter) catchUp(ctx context.Context) error {
	var evs []engine.Message
	err := scan(ctx, w.s, w.st, w.known, 512, func(m engine.Message) bool {
		evs = append(evs, m)
		return true
	})
	if err != nil {
		return err
	}
	w.learnStored(evs, nil)
	return nil
}

// catchUpTo reads what was appended after w.known up to target at least
// (the last sequence a refusal named). Any replica of the stream answers
// reads, and one that is behind answers short: it asks again until it has
// read that far.
func (w *streamWriter) catchUpTo(ctx context.Context, target uint64) error {
	for {
		if err := w.catchUp(ctx); err != nil || w.known >= target {
			return err
		}
		if err := engbackoff.Sleep(ctx, time.Millisecond); err != nil {
			return err
		}
	}
}

// start (re)builds what the streamWriter knows from the stream: everything above
// the index's watermark, which it indexes again.
func (w *streamWriter) start(ctx context.Context) error {
	w.pending, w.mark = nil, 0
	w.keys, w.ids = map[string]uint64{}, map[string]uint64{}
	wm, err := w.s.watermark(ctx, w.st)
	if err != nil {
		return err
	}
	w.known = wm
	if err := w.catchUp(ctx); err != nil {
		return err
	}
	w.ready = true
	return nil
}

// finishIndex waits for the index entries published so far and then
// moves the watermark past them. An entry that failed is an error: the
// caller starts over from the watermark.
func (w *streamWriter) finishIndex(ctx context.Context) error {
	for _, f := range w.pending {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			w.pending = nil
			return err
		case <-ctx.Done():
			w.pending = nil
			return ctx.Err()
		}
	}
	w.pending = w.pending[:0]
	if w.mark == 0 {
		return nil
	}
	if _, err := w.s.c.JS.PublishMsgAsync(&nats.Msg{Subject: w.st.watermarkSubject(), Data: encodeUint(w.mark)}); err != nil {
		return err
	}
	w.mark = 0
	// The caches only speed things up: what they drop, the index has.
	if len(w.ids) > 1<<17 {
		w.ids = map[string]uint64{}
	}
	if len(w.keys) > 1<<20 {
		w.keys = map[string]uint64{}
	}
	return nil
}

func index(reqs []*appendReq, r *appendReq) int {
	for i := range reqs {
		if reqs[i] == r {
			return i
		}
	}
	return -1
}

// plan is what one attempt publishes.
type plan struct {
	reqs []*appendReq // in order; refused ones have errs set
	errs map[*appendReq]error
	msgs [][]engine.Message // per request: the events to store (new ones)
	// generated marks, per request and aligned with msgs, the IDs the
	// caller generated (nil: none).
	generated [][]bool
	refusals  bool
}

// plan decides, for each append in order, which events are new, their
// versions and sequences, and which appends are refused, as if each ran
// after the ones before it.
func (w *streamWriter) plan(ctx context.Context, reqs []*appendReq) (*plan, error) {
	if err := w.learn(ctx, reqs); err != nil {
		return nil, err
	}
	p := &plan{reqs: reqs, errs: map[*appendReq]error{}, msgs: make([][]engine.Message, len(reqs)), generated: make([][]bool, len(reqs))}
	seq := w.known
	keys := map[string]uint64{}
	ids := map[string]*engine.Message{}
	now := time.Now().UTC()
	for ri, r := range reqs {
		r.res = eventstore.AppendResult{Events: make([]engine.Message, len(r.events))}
		var newMsgs []engine.Message
		var newIdx []int
		localKeys := map[string]uint64{}
		local := map[string]int{} // ID -> index of its first new event in this append
		var gen []bool
		var dupOf [][2]int // a repeated ID's index and its first's
		var err error
		for i := range r.events {
			ev := r.events[i]
			ev.Stream = w.st.name
			if prev, ok := ids[ev.ID]; ok {
				r.res.Events[i] = *prev
				continue
			}
			if seq, ok := w.ids[ev.ID]; ok {
				m, err := getOne(ctx, w.s.c.NC, w.st.js, directGet{Seq: seq})
				switch {
				case errors.Is(err, errNotFound) || err == nil && m.Sequence != seq:
					delete(w.ids, ev.ID) // compacted: the ID is forgotten with its event
				case err != nil:
					return nil, fmt.Errorf("natsstore: the stored event %q: %w", ev.ID, err)
				default:
					if r.res.Events[i], err = w.st.decode(m); err != nil {
						return nil, err
					}
					continue
				}
			}
			if j, ok := local[ev.ID]; ok {
				dupOf = append(dupOf, [2]int{i, j})
				continue
			}
			cur, ok := localKeys[ev.Key]
			if !ok {
				cur, ok = keys[ev.Key]
			}
			if !ok {
				cur = w.keys[ev.Key]
			}
			if ev.Key == "" {
				ev.Version = 0
			} else {
				if ev.Version != 0 && ev.Version != cur+1 {
					err = &eventstore.KeyConflictError{Stream: w.st.name, Key: ev.Key, Expected: ev.Version - 1, Actual: cur}
					break
				}
				ev.Version = cur + 1
				localKeys[ev.Key] = ev.Version
			}
			if ev.Time.IsZero() {
				ev.Time = now
			}
			newMsgs = append(newMsgs, ev)
			if r.fresh != nil {
				gen = append(gen, r.fresh[i])
			}
			newIdx = append(newIdx, i)
			local[ev.ID] = i
			r.res.Events[i] = ev
		}
		if err == nil && len(newMsgs) > 0 {
			err = checkExpected(w.st.name, r.expected, seq)
		}
		if err == nil && len(newMsgs) > 0 && r.expect != versions.Any {
			key := newMsgs[0].Key
			if cur := newMsgs[0].Version - 1; !r.expect.Holds(cur) {
				err = &versions.ConflictError{Stream: w.st.name, Key: key, Expected: r.expect, Current: cur}
			}
		}
		if err != nil {
			p.errs[r] = err
			p.refusals = true
			r.res = eventstore.AppendResult{}
			continue
		}
		for j := range newMsgs {
			seq++
			newMsgs[j].Sequence = seq
			r.res.Events[newIdx[j]].Sequence = seq
		}
		for _, d := range dupOf {
			r.res.Events[d[0]] = r.res.Events[d[1]]
		}
		for k, v := range localKeys {
			keys[k] = v
		}
		for j := range newMsgs {
			ids[newMsgs[j].ID] = &r.res.Events[newIdx[j]]
		}
		r.res.Appended = len(newMsgs)
		r.res.LastSequence = seq
		p.msgs[ri] = newMsgs
		p.generated[ri] = gen
	}
	return p, nil
}

func checkExpected(stream string, expected eventstore.ExpectedVersion, current uint64) error {
	if expected == eventstore.Any || uint64(expected) == current && expected >= 0 {
		return nil
	}
	return &eventstore.ConflictError{Stream: stream, Expected: expected, Actual: current}
}

// learn fetches what plan needs and the streamWriter does not know: the
// versions of keys it has not seen, and whether IDs it has not seen are
// in the index. One request each, for the whole group.
func (w *streamWriter) learn(ctx context.Context, reqs []*appendReq) error {
	var keySubjects, idSubjects []string
	wantKey := map[string]string{}
	wantID := map[string]string{}
	for _, r := range reqs {
		for i := range r.events {
			ev := &r.events[i]
			if ev.Key != "" {
				subj := w.st.keySubject(ev.Key)
				if _, ok := w.keys[ev.Key]; !ok && wantKey[subj] == "" {
					wantKey[subj] = ev.Key
					keySubjects = append(keySubjects, subj)
				}
			}
			if _, ok := w.ids[ev.ID]; !ok && (r.fresh == nil || !r.fresh[i]) {
				subj := w.st.idSubject(ev.ID)
				if _, dup := wantID[subj]; !dup {
					wantID[subj] = ev.ID
					idSubjects = append(idSubjects, subj)
				}
			}
		}
	}
	for _, subjects := range chunks(keySubjects) {
		missing := map[string]bool{}
		for _, s := range subjects {
			missing[s] = true
		}
		err := getBatch(ctx, w.s.c.NC, w.st.js, directGet{MultiLastFor: subjects, UpToSeq: w.known}, func(m stored) error {
			_, v, err := codec.MessageKey(m.Data)
			if err != nil {
				return err
			}
			w.keys[wantKey[m.Subject]] = v
			delete(missing, m.Subject)
			return nil
		})
		if err != nil && !w.s.missing(ctx, w.st, err) {
			return err
		}
		// Keys with no stored event: compacted away (a key head), or new.
		var heads []string
		headKey := map[string]string{}
		for subj := range missing {
			key := wantKey[subj]
			h := w.st.headSubject(key)
			heads = append(heads, h)
			headKey[h] = key
			w.keys[key] = 0
		}
		if len(heads) > 0 {
			err := getBatch(ctx, w.s.c.NC, w.s.idx, directGet{MultiLastFor: heads}, func(m stored) error {
				v, err := decodeUint(m.Data)
				w.keys[headKey[m.Subject]] = v
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	for _, subjects := range chunks(idSubjects) {
		err := getBatch(ctx, w.s.c.NC, w.s.idx, directGet{MultiLastFor: subjects}, func(m stored) error {
			seq, err := decodeUint(m.Data)
			if err != nil {
				return err
			}
			// An entry whose event was compacted away does not count:
			// the ID is forgotten with its event (eventstore.Compactor).
			msg, err := getOne(ctx, w.s.c.NC, w.st.js, directGet{Seq: seq})
			if errors.Is(err, errNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if ev, err := w.st.decode(msg); err == nil && msg.Sequence == seq && ev.ID == wantID[m.Subject] {
				w.ids[ev.ID] = seq
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func chunks(s []string) [][]string {
	const n = 256
	var out [][]string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	if len(s) > 0 {
		out = append(out, s)
	}
	return out
}
