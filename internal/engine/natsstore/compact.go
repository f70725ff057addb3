package natsstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// First implements eventstore.Compactor.
func (s *EventStore) First(ctx context.Context, stream string) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	info, err := s.info(ctx, s.stream(stream))
	if err != nil || info == nil || info.State.Msgs == 0 {
		return 0, err
	}
	return info.State.FirstSeq, nil
}

// Compact implements eventstore.Compactor. Before the events go, the last
// version of each of their keys is written to the key's head, so that a
// key whose events are all gone keeps its version; after, their ID index
// entries go too, so the index shrinks with the stream.
func (s *EventStore) Compact(ctx context.Context, stream string, before uint64) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	st := s.stream(stream)
	info, err := s.info(ctx, st)
	if err != nil || info == nil || info.State.Msgs == 0 {
		return 0, err
	}
	upto := min(before, info.State.LastSeq) // the last event stays
	first := info.State.FirstSeq
	if upto <= first {
		return 0, nil
	}
	heads := map[string]uint64{}
	var ids []string
	err = scan(ctx, s, st, first-1, int(min(upto-first, 512)), func(m engine.Message) bool {
		if m.Sequence >= upto {
			return false
		}
		if m.Key != "" {
			heads[m.Key] = m.Version
		}
		ids = append(ids, m.ID)
		return true
	})
	if err != nil {
		return 0, err
	}
	var acks []jetstream.PubAckFuture
	for key, v := range heads {
		f, err := s.c.JS.PublishMsgAsync(&nats.Msg{Subject: st.headSubject(key), Data: encodeUint(v)})
		if err != nil {
			return 0, fmt.Errorf("natsstore: compact %q: key head: %w", stream, err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return 0, fmt.Errorf("natsstore: compact %q: key head: %w", stream, err)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	es, err := s.c.JS.Stream(ctx, st.js)
	if err != nil {
		return 0, fmt.Errorf("natsstore: compact %q: %w", stream, err)
	}
	if err := es.Purge(ctx, jetstream.WithPurgeSequence(upto)); err != nil {
		return 0, fmt.Errorf("natsstore: compact %q: %w", stream, err)
	}
	return int(upto - first), s.forgetIDs(ctx, st, ids)
}

// forgetIDs removes the index entries of compacted events, a few requests
// in flight at a time. One that fails leaves an entry whose event is gone,
// which Lookup treats as absent.
func (s *EventStore) forgetIDs(ctx context.Context, st *esStream, ids []string) error {
	idx, err := s.c.JS.Stream(ctx, s.idx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var mu sync.Mutex
	var first error
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := idx.Purge(ctx, jetstream.WithPurgeSubject(st.idSubject(id))); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("natsstore: forget the ID %q: %w", id, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}
