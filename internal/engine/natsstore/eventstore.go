package natsstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
)

// EventStore is eventstore.Store on JetStream.
//
// Each engine stream is a JetStream stream of its own whose sequence is the
// engine's Sequence: only events go into it and compaction purges a
// prefix. Unkeyed events are on subject <prefix>.es.<stream>.u, keyed ones
// on <prefix>.es.<stream>.k.<key>, so a key's events are read by subject.
// Position stays 0: JetStream keeps no order across streams.
//
// One index stream per store, <prefix>_IDX, keeps one message per subject:
// event IDs (<prefix>.idx.<stream>.i.<id>, the event's sequence), the
// highest sequence up to which every ID is indexed (<prefix>.idx.<stream>.w)
// and the versions of keys whose events were compacted away
// (<prefix>.idx.<stream>.h.<key>). See append.go for who writes them.
type EventStore struct {
	c      *Conn
	prefix string
	idx    string // the index stream's name

	mu      sync.Mutex
	streams map[string]*esStream
	closed  atomic.Bool
	subs    sync.Map // *subscription: ended by Close
}

// NewEventStore opens the event store of c's prefix, creating its index
// stream when missing.
func NewEventStore(ctx context.Context, c *Conn) (*EventStore, error) {
	s := &EventStore{c: c, prefix: c.opts.Prefix, idx: c.opts.Prefix + "_IDX", streams: map[string]*esStream{}}
	_, err := c.CreateStream(ctx, jetstream.StreamConfig{
		Name:              s.idx,
		Description:       "event IDs, index watermarks and compacted keys' versions of the event store " + s.prefix,
		Subjects:          []string{s.prefix + ".idx.>"},
		MaxMsgsPerSubject: 1,
		Storage:           jetstream.FileStorage,
		Replicas:          c.opts.Replicas,
		AllowDirect:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("natsstore: index stream %s: %w", s.idx, err)
	}
	return s, nil
}

// duplicateWindow is how long JetStream remembers the message IDs it
// stored: a message sent twice within it is stored once.
const duplicateWindow = 5 * time.Second

// esStream is one engine stream's JetStream stream and its writer.
type esStream struct {
	name    string // the engine's name
	js      string // the JetStream stream's name
	subject string // <prefix>.es.<token(name)>, the events' subjects' start
	idxSubj string // <prefix>.idx.<token(name)>, its index entries' start

	createMu sync.Mutex
	created  bool

	w *streamWriter
}

func (s *EventStore) stream(name string) *esStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[name]
	if !ok {
		tok := token(name)
		st = &esStream{
			name:    name,
			js:      s.prefix + "_ES_" + tok,
			subject: s.prefix + ".es." + tok,
			idxSubj: s.prefix + ".idx." + tok,
		}
		st.w = newStreamWriter(s, st)
		s.streams[name] = st
	}
	return st
}

// create makes the stream's JetStream stream once; appends and
// subscriptions need it, reads of a stream never written read as empty.
func (s *EventStore) create(ctx context.Context, st *esStream) error {
	st.createMu.Lock()
	defer st.createMu.Unlock()
	if st.created {
		return nil
	}
	_, err := s.c.CreateStream(ctx, jetstream.StreamConfig{
		Name:               st.js,
		Description:        "the events of stream " + st.name,
		Subjects:           []string{st.subject + ".>"},
		Storage:            jetstream.FileStorage,
		Replicas:           s.c.opts.Replicas,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		DenyDelete:         true,
		// Every message carries an ID of its own so that a pipelined append
		// can expect the one before it (append.go); JetStream remembers
		// them for its duplicate window, which need not be long.
		Duplicates: duplicateWindow,
	})
	if err != nil {
		return fmt.Errorf("natsstore: stream %q: %w", st.name, err)
	}
	st.created = true
	return nil
}

func (st *esStream) keySubject(key string) string {
	if key == "" {
		return st.subject + ".u"
	}
	return st.subject + ".k." + token(key)
}

func (st *esStream) idSubject(id string) string { return st.idxSubj + ".i." + token(id) }
func (st *esStream) headSubject(key string) string {
	return st.idxSubj + ".h." + token(key)
}
func (st *esStream) watermarkSubject() string { return st.idxSubj + ".w" }

// decode turns a stored event into a message.
func (st *esStream) decode(m stored) (engine.Message, error) {
	msg, err := codec.DecodeMessage(m.Data)
	if err != nil {
		return engine.Message{}, fmt.Errorf("natsstore: event %d of stream %q: %w", m.Sequence, st.name, err)
	}
	msg.Stream, msg.Sequence, msg.Position = st.name, m.Sequence, 0
	return msg, nil
}

// missing reports whether err means the JetStream stream does not exist:
// a direct get to a stream nobody serves has no responders.
func (s *EventStore) missing(ctx context.Context, st *esStream, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errStreamMissing) {
		return true // it was missing when read; it may exist by now
	}
	if _, serr := s.c.JS.Stream(ctx, st.js); errors.Is(serr, jetstream.ErrStreamNotFound) {
		return true
	}
	return false
}

func (s *EventStore) check() error {
	if s.closed.Load() {
		return eventstore.ErrClosed
	}
	return nil
}

// Read implements eventstore.Store; a limit of zero or less reads to the
// end.
func (s *EventStore) Read(ctx context.Context, stream string, after uint64, limit int) ([]engine.Message, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var out []engine.Message
	page := limit
	if limit <= 0 {
		page = 512
	}
	err := scan(ctx, s, s.stream(stream), after, page, func(m engine.Message) bool {
		out = append(out, m)
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

// Version implements eventstore.Store.
func (s *EventStore) Version(ctx context.Context, stream string) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	st := s.stream(stream)
	info, err := s.info(ctx, st)
	if err != nil || info == nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// info returns the stream's JetStream state, nil when it does not exist.
func (s *EventStore) info(ctx context.Context, st *esStream) (*jetstream.StreamInfo, error) {
	js, err := s.c.JS.Stream(ctx, st.js)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("natsstore: stream %q: %w", st.name, err)
	}
	return js.CachedInfo(), nil
}

// KeyVersion implements eventstore.Store.
func (s *EventStore) KeyVersion(ctx context.Context, stream, key string) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if key == "" {
		return 0, nil
	}
	return s.keyVersion(ctx, s.stream(stream), key)
}

// keyVersion is the version of the key's last stored event, or, when all
// of them were compacted away, the one its key head keeps.
func (s *EventStore) keyVersion(ctx context.Context, st *esStream, key string) (uint64, error) {
	m, err := getOne(ctx, s.c.NC, st.js, directGet{LastFor: st.keySubject(key)})
	switch {
	case err == nil:
		_, v, err := codec.MessageKey(m.Data)
		return v, err
	case errors.Is(err, errNotFound) || s.missing(ctx, st, err):
	default:
		return 0, err
	}
	h, err := getOne(ctx, s.c.NC, s.idx, directGet{LastFor: st.headSubject(key)})
	if errors.Is(err, errNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return decodeUint(h.Data)
}

// ReadKey implements eventstore.Store. It reads the key's subject from the
// stream's start: the cost is the key's events, as the interface says.
func (s *EventStore) ReadKey(ctx context.Context, stream, key string, after uint64, limit int) ([]engine.Message, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if key == "" {
		return nil, nil
	}
	if limit <= 0 {
		limit = math.MaxInt
	}
	st := s.stream(stream)
	var out []engine.Message
	next := uint64(1)
	for len(out) < limit {
		page := 0
		err := getBatch(ctx, s.c.NC, st.js, directGet{Seq: next, NextFor: st.keySubject(key), Batch: 256}, func(m stored) error {
			page++
			next = m.Sequence + 1
			msg, err := st.decode(m)
			if err == nil && msg.Version > after && len(out) < limit {
				out = append(out, msg)
			}
			return err
		})
		if s.missing(ctx, st, err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if page < 256 {
			break
		}
	}
	return out, nil
}

// Lookup implements eventstore.Store.
func (s *EventStore) Lookup(ctx context.Context, stream, id string) (engine.Message, bool, error) {
	if err := s.check(); err != nil {
		return engine.Message{}, false, err
	}
	return s.lookup(ctx, s.stream(stream), id)
}

// lookup finds the event by its index entry, else among the events above
// the index's watermark, which may not be indexed yet.
func (s *EventStore) lookup(ctx context.Context, st *esStream, id string) (engine.Message, bool, error) {
	e, err := getOne(ctx, s.c.NC, s.idx, directGet{LastFor: st.idSubject(id)})
	switch {
	case err == nil:
		seq, err := decodeUint(e.Data)
		if err != nil {
			return engine.Message{}, false, err
		}
		m, err := getOne(ctx, s.c.NC, st.js, directGet{Seq: seq})
		if errors.Is(err, errNotFound) {
			return engine.Message{}, false, nil // compacted
		}
		if err != nil {
			return engine.Message{}, false, err
		}
		if m.Sequence == seq {
			msg, err := st.decode(m)
			if err != nil || msg.ID == id {
				return msg, err == nil, err
			}
		}
	case !errors.Is(err, errNotFound):
		return engine.Message{}, false, err
	}
	w, err := s.watermark(ctx, st)
	if err != nil {
		return engine.Message{}, false, err
	}
	var found engine.Message
	ok := false
	err = scan(ctx, s, st, w, 512, func(msg engine.Message) bool {
		if msg.ID == id {
			found, ok = msg, true
			return false
		}
		return true
	})
	return found, ok, err
}

// watermark is the sequence up to which every event's ID is indexed.
func (s *EventStore) watermark(ctx context.Context, st *esStream) (uint64, error) {
	m, err := getOne(ctx, s.c.NC, s.idx, directGet{LastFor: st.watermarkSubject()})
	if errors.Is(err, errNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return decodeUint(m.Data)
}

// scan calls fn with the stream's events after the given sequence, in
// order, until fn returns false or the stream ends.
func scan(ctx context.Context, s *EventStore, st *esStream, after uint64, page int, fn func(engine.Message) bool) error {
	page = max(1, min(page, 512))
	for {
		n, stop := 0, false
		err := getBatch(ctx, s.c.NC, st.js, directGet{Seq: after + 1, Batch: page}, func(m stored) error {
			n++
			after = m.Sequence
			if stop {
				return nil
			}
			msg, err := st.decode(m)
			if err != nil {
				return err
			}
			stop = !fn(msg)
			return nil
		})
		if s.missing(ctx, st, err) {
			return nil
		}
		if err != nil || stop || n < page {
			return err
		}
	}
}

// Close implements eventstore.Store: it waits for appends under way and
// ends subscriptions; the Conn stays open.
func (s *EventStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.mu.Lock()
	streams := make([]*esStream, 0, len(s.streams))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	for _, st := range streams {
		st.w.close()
	}
	s.subs.Range(func(k, _ any) bool {
		k.(*subscription).stop()
		return true
	})
	return nil
}

func encodeUint(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("natsstore: index entry of %d bytes, want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
