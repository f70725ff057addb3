package storebench

import (
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("storebench: group committer closed")

// maxGroupEvents bounds one transaction so a flood of NDJSON batches cannot
// build an unbounded write set; the crowd left over waits for the next commit.
const maxGroupEvents = 10_000

// GroupCommitter appends events to one bbolt bucket with group commit:
// writers hand their events to a single committer goroutine and wait; the
// committer takes every writer that is waiting at that moment, writes all
// their events in one db.Update (one durable commit) and then answers them.
//
// There is no timer: a lone writer is committed at once and pays one commit,
// while writers that arrive during a commit queue up and share the next one.
// bbolt allows one writing transaction at a time and fsyncs inside it, so
// commits cannot overlap; the whole gain is in how many writers share one.
// Keys are the bucket's sequence (8-byte big-endian), assigned inside the
// transaction, so they are gap-free and become visible in key order.
type GroupCommitter struct {
	db     *bolt.DB
	bucket []byte

	// reqs is unbuffered on purpose: a send completes only when the committer
	// has taken the request, so a request is never stranded in a buffer when
	// the committer stops, and "everyone waiting now" is exactly the senders
	// blocked on this channel.
	reqs    chan *appendReq
	closing chan struct{}
	once    sync.Once
	done    chan struct{}

	commits atomic.Uint64 // transactions committed, for events-per-commit
	noYield bool          // benchmark only: sweep once, without yielding
}

// appendReq is one writer's events and where it waits for the outcome.
type appendReq struct {
	values [][]byte
	first  uint64     // sequence of values[0], set by the committer
	result chan error // buffered 1: the committer never blocks on a writer
}

// NewGroupCommitter creates bucket if needed and starts the committer.
func NewGroupCommitter(db *bolt.DB, bucket string) (*GroupCommitter, error) {
	return newGroupCommitter(db, bucket, false)
}

// newGroupCommitter is NewGroupCommitter with the benchmark's noYield knob.
func newGroupCommitter(db *bolt.DB, bucket string, noYield bool) (*GroupCommitter, error) {
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(bucket))
		return err
	}); err != nil {
		return nil, err
	}
	g := &GroupCommitter{
		db:      db,
		bucket:  []byte(bucket),
		reqs:    make(chan *appendReq),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		noYield: noYield,
	}
	go g.run()
	return g, nil
}

// Append stores values under consecutive keys and returns the first key's
// sequence once the commit holding them is on disk. The caller must not
// modify values until Append returns (bbolt reads them during the commit).
// If the commit fails, none of the values are stored.
func (g *GroupCommitter) Append(values ...[]byte) (uint64, error) {
	r := &appendReq{values: values, result: make(chan error, 1)}
	select {
	case g.reqs <- r:
	case <-g.closing:
		return 0, ErrClosed
	}
	err := <-r.result
	return r.first, err
}

// Close stops the committer after the commit in flight, if any. Appends
// already taken are answered; later ones get ErrClosed. It does not close db.
func (g *GroupCommitter) Close() error {
	g.once.Do(func() { close(g.closing) })
	<-g.done
	return nil
}

// Commits returns the number of transactions committed so far.
func (g *GroupCommitter) Commits() uint64 { return g.commits.Load() }

// run is the committer loop: block for the first writer, gather everyone
// else who is waiting, commit them together, answer them, repeat.
func (g *GroupCommitter) run() {
	defer close(g.done)
	var group []*appendReq
	for {
		group = group[:0]
		select {
		case r := <-g.reqs:
			group = append(group, r)
		case <-g.closing:
			return
		}
		events := len(group[0].values)
		// The writers answered by the last commit are runnable but have not
		// queued again yet; committing now would split the crowd into two
		// half-size commits. So yield, take whoever queued, and repeat while
		// a yield brings someone. A lone writer pays one yield (about a
		// microsecond), never a timer.
		for more := true; more && events < maxGroupEvents; {
			if !g.noYield {
				runtime.Gosched()
			}
			more = false
		sweep:
			for events < maxGroupEvents {
				select {
				case r := <-g.reqs:
					group = append(group, r)
					events += len(r.values)
					more = !g.noYield
				default:
					break sweep
				}
			}
		}
		err := g.commit(group)
		g.commits.Add(1)
		for i, r := range group {
			r.result <- err
			group[i] = nil // drop the reference to the writer's values
		}
	}
}

// commit writes every request's values in one read-write transaction.
func (g *GroupCommitter) commit(group []*appendReq) error {
	return g.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(g.bucket)
		for _, r := range group {
			first, err := PutEvents(b, r.values...)
			if err != nil {
				return err
			}
			r.first = first
		}
		return nil
	})
}

// PutEvents appends values to b under the next sequence numbers and returns
// the first one. Every bbolt variant of the benchmark writes through it.
func PutEvents(b *bolt.Bucket, values ...[]byte) (uint64, error) {
	// Keys only grow, so a full page is never split again: pack pages full
	// instead of bbolt's default half-full split.
	b.FillPercent = 1.0
	seq := b.Sequence()
	first := seq + 1
	for _, v := range values {
		seq++
		if err := b.Put(SeqKey(seq), v); err != nil {
			return 0, err
		}
	}
	return first, b.SetSequence(seq)
}

// SeqKey is the 8-byte big-endian key of sequence n, so byte order is
// numeric order.
func SeqKey(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}
