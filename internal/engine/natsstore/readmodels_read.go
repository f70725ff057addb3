package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// Document reads, once what this store staged for the projection is
// committed, the projection's generation and renders it as the memory
// store renders a document, keys in sorted order.
//
// The generation is read in one direct get, which one replica answers from
// one state of the stream: a snapshot between two batches. A replica may
// answer from an older state than the leader's, so the snapshot counts
// only if its checkpoint, the newest message of every generation, is at
// least the one read from the leader just before: then it holds every
// Apply that returned before Document was called. A generation too large
// for one answer is read from the leader a message at a time; the same
// argument holds, since each message is read after the ones before it.
func (s *ReadModels) Document(ctx context.Context, name string) ([]byte, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	if err := s.flushed(ctx, name); err != nil {
		return nil, err
	}
	out, err := s.document(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read model %q: %w", name, err)
	}
	return out, nil
}

func (s *ReadModels) document(ctx context.Context, name string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		h, err := s.last(ctx, s.l.head(name))
		if err != nil {
			return nil, err
		}
		if h == nil || len(h.data) == 0 {
			return nil, readmodel.ErrNotFound
		}
		gen := string(h.data)
		cp, err := s.last(ctx, s.l.checkpoint(gen))
		if err != nil {
			return nil, err
		}
		if cp != nil && len(cp.data) > 0 {
			msgs, err := s.directPage(ctx, s.l.gen(gen))
			if errors.Is(err, errTruncated) {
				msgs = msgs[:0]
				err = s.scanLeader(ctx, s.l.gen(gen), func(m *storedMsg) error {
					msgs = append(msgs, m)
					return nil
				})
			}
			if err != nil {
				return nil, err
			}
			// A snapshot ends with the checkpoint: one that does not
			// was cut short by a Move or Delete purging the generation.
			if n := len(msgs); n > 0 && msgs[n-1].subject == cp.subject && len(msgs[n-1].data) > 0 && msgs[n-1].seq >= cp.seq {
				return s.render(gen, msgs)
			}
		}
		if err := backoff(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// render renders a generation's messages: the last message of each
// subject, in sequence order.
func (s *ReadModels) render(gen string, msgs []*storedMsg) ([]byte, error) {
	values := map[string]value{}
	chunks := map[string]map[int][]byte{}
	for _, m := range msgs {
		part, ok := s.l.parseGen(gen, m.subject)
		if !ok {
			return nil, fmt.Errorf("subject %s: %w", m.subject, errCorrupt)
		}
		switch {
		case part.checkpoint:
		case part.chunk < 0:
			v, err := decodeValue(m.data)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", part.key, err)
			}
			values[part.key] = v
		default:
			if chunks[part.key] == nil {
				chunks[part.key] = map[int][]byte{}
			}
			chunks[part.key][part.chunk] = m.data
		}
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys) // json.Marshal's order of a map's keys
	out := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		name, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		out = append(append(out, name...), ':')
		v := values[k]
		if out, err = v.render(out, chunkOf(k, chunks[k])); err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
	}
	return append(out, '}'), nil
}

// chunkOf looks a list's full chunks up in what a read found.
func chunkOf(key string, found map[int][]byte) func(int) ([]byte, error) {
	return func(i int) ([]byte, error) {
		c, ok := found[i]
		if !ok {
			return nil, fmt.Errorf("key %q: %w: list chunk %d is missing", key, errCorrupt, i)
		}
		return c, nil
	}
}

// Value reads the key's value. A value that Applies not yet committed
// leave is answered from what they staged, so a projection that reads a
// key, computes its next value and sets it (Reduce) goes on at the pace of
// staging, not of commits; a list with full chunks waits for the commit.
// A key they did not change is read from the leader at once, and a list's
// full chunks with it in one direct get, as Document reads a generation:
// the answer counts if its value is at least the one the leader gave.
func (s *ReadModels) Value(ctx context.Context, name, key string) ([]byte, bool, error) {
	if err := s.usable(ctx); err != nil {
		return nil, false, err
	}
	p := s.projection(name)
	p.mu.Lock()
	v := p.staged(key)
	if v != nil && (v.tag != tagList || v.chunks == 0) {
		out, err := v.render(nil, nil)
		p.mu.Unlock()
		return out, err == nil, err
	}
	p.mu.Unlock()
	if v != nil {
		if err := s.flushed(ctx, name); err != nil {
			return nil, false, err
		}
	}
	out, found, err := s.value(ctx, name, key)
	if err != nil {
		return nil, false, fmt.Errorf("read model %q: key %q: %w", name, key, err)
	}
	return out, found, nil
}

func (s *ReadModels) value(ctx context.Context, name, key string) ([]byte, bool, error) {
	for attempt := 0; ; attempt++ {
		h, err := s.last(ctx, s.l.head(name))
		if err != nil || h == nil || len(h.data) == 0 {
			return nil, false, err
		}
		gen := string(h.data)
		m, err := s.last(ctx, s.l.value(gen, key))
		if err != nil {
			return nil, false, err
		}
		if m == nil {
			// Missing, unless a Move or Delete purged the generation
			// between the two reads: then the head has changed.
			again, err := s.last(ctx, s.l.head(name))
			if err != nil {
				return nil, false, err
			}
			if again != nil && again.seq == h.seq {
				return nil, false, nil
			}
		} else {
			v, err := decodeValue(m.data)
			if err != nil {
				return nil, false, err
			}
			if v.tag != tagList || v.chunks == 0 {
				out, err := v.render(nil, nil)
				return out, err == nil, err
			}
			out, ok, err := s.list(ctx, gen, key, m.seq)
			if err != nil || ok {
				return out, ok, err
			}
		}
		if err := backoff(ctx, attempt); err != nil {
			return nil, false, err
		}
	}
}

// list reads a list with full chunks: its value message and chunks in one
// snapshot that holds the value message the leader gave (seq) or a newer
// one. ok is false when the answer was older.
func (s *ReadModels) list(ctx context.Context, gen, key string, seq uint64) (out []byte, ok bool, err error) {
	msgs, err := s.directPage(ctx, s.l.keyPrefix(gen, key)+">")
	if errors.Is(err, errTruncated) {
		msgs = msgs[:0]
		err = s.scanLeader(ctx, s.l.keyPrefix(gen, key)+">", func(m *storedMsg) error {
			msgs = append(msgs, m)
			return nil
		})
	}
	if err != nil {
		return nil, false, err
	}
	var last *storedMsg // the key's value message: the newest read
	chunks := map[int][]byte{}
	for _, m := range msgs {
		part, ok := s.l.parseGen(gen, m.subject)
		if !ok || part.checkpoint || part.key != key {
			return nil, false, fmt.Errorf("subject %s: %w", m.subject, errCorrupt)
		}
		if part.chunk >= 0 {
			chunks[part.chunk] = m.data
		} else {
			last = m
		}
	}
	if last == nil || last.seq < seq {
		return nil, false, nil
	}
	v, err := decodeValue(last.data)
	if err != nil {
		return nil, false, err
	}
	out, err = v.render(nil, chunkOf(key, chunks))
	return out, err == nil, err
}
