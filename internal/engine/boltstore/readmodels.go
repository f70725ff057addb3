package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/codec"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
)

// ReadModels is the readmodel.Store of --storage=disk: each projection's
// document and checkpoint live in the data file, and Apply writes both in
// one transaction, so a restart neither applies an event twice nor skips
// one. Documents render byte for byte as the memory store renders them.
//
// Inside readmodels/<name>, the doc bucket maps each key to a value tagged
// with its kind (change.go), except lists, which are nested buckets of
// items (JSON text) under 8-byte big-endian indexes: an append writes one
// item, whatever the length of the list. Every name (projection, key,
// stream) is stored behind a one-byte prefix, because bbolt refuses empty
// keys and a read model key can be empty.
type ReadModels struct {
	db     *DB
	wb     *writeBehind
	closed atomic.Bool
	// names caches the stored form of projection and stream names, a
	// small set that every Apply names again. The slices are shared and
	// never written.
	names sync.Map // string -> []byte
}

// NewReadModels returns the read models kept in db. Closing them does not
// close db: its owner does.
func NewReadModels(db *DB) *ReadModels {
	return &ReadModels{db: db, wb: newWriteBehind(db)}
}

var (
	_ readmodel.Store            = (*ReadModels)(nil)
	_ readmodel.CheckpointLister = (*ReadModels)(nil)
)

// errReadModelsClosed is returned by ReadModels after Close.
var errReadModelsClosed = errors.New("read model store is closed")

var (
	bucketDoc        = []byte("doc")
	bucketCheckpoint = []byte("checkpoint")
)

// usable says why a call cannot run: its context ended or the store closed.
func (s *ReadModels) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return errReadModelsClosed
	}
	return nil
}

// readable is usable for a read: it also waits until every Apply staged
// before it is committed, so a read sees what was applied before it.
func (s *ReadModels) readable(ctx context.Context) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	return s.wb.barrier(ctx)
}

// Failure is the error of a commit that failed, after which the store
// takes no more Applies (see writeBehind); nil while it works.
func (s *ReadModels) Failure() error { return s.wb.failure() }

// Apply checks every change against the document as the committed state
// and the Applies staged before it leave it, stages the changes and cp,
// and returns: the commit follows in the background (writeBehind), so a
// projection hands over its next event while the last one is committed,
// and the events of that moment share one transaction instead of a pair of
// fdatasyncs each. A type clash or a value that does not encode as JSON is
// refused here and stages nothing. A reader or a restart sees each Apply's
// changes and checkpoint both or neither; reads through this store wait
// for what was staged before them. An append costs one item's write,
// however long the list.
func (s *ReadModels) Apply(ctx context.Context, projection string, changes []readmodel.Change, cp readmodel.Checkpoint) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	a, err := s.newApplyTx(projection, changes, cp)
	if err == nil {
		err = s.wb.stage(ctx, a)
	}
	if err != nil {
		return fmt.Errorf("apply to read model %q: %w", projection, err)
	}
	return nil
}

// applyTx is one Apply's work, encoded before the transaction.
type applyTx struct {
	projection  string
	name        []byte             // the projection's stored name
	given       []readmodel.Change // what Apply was given, to check; the caller's until staged
	changes     []change           // the same, encoded
	checkpoints []checkpointPut
	// Room for the usual Apply, a projection's one change and one stream,
	// so that it costs one allocation besides its bytes.
	oneChange     [1]change
	oneCheckpoint [1]checkpointPut
}

// checkpointPut is one stream's sequence as the checkpoint bucket holds it.
type checkpointPut struct {
	stream string // the caller's, to key a commit's last checkpoints by
	key    []byte
	seq    [8]byte // big-endian
}

func (s *ReadModels) newApplyTx(projection string, changes []readmodel.Change, cp readmodel.Checkpoint) (*applyTx, error) {
	name, err := s.storedName(projection)
	if err != nil {
		return nil, err
	}
	a := &applyTx{projection: projection, name: name, given: changes}
	a.changes, a.checkpoints = a.oneChange[:0], a.oneCheckpoint[:0]
	if len(changes) > 0 {
		buf := make([]byte, 0, encodeSizeHint(changes))
		if a.changes, err = encodeChanges(a.changes, buf, changes); err != nil {
			return nil, err
		}
	}
	for stream, seq := range cp {
		k, err := s.storedName(stream)
		if err != nil {
			return nil, fmt.Errorf("checkpoint of stream: %w", err)
		}
		c := checkpointPut{stream: stream, key: k}
		binary.BigEndian.PutUint64(c.seq[:], seq)
		a.checkpoints = append(a.checkpoints, c)
	}
	return a, nil
}

// storedName is the package's storedName, cached.
func (s *ReadModels) storedName(name string) ([]byte, error) {
	if b, ok := s.names.Load(name); ok {
		return b.([]byte), nil
	}
	b, err := storedName(name)
	if err != nil {
		return nil, err
	}
	s.names.Store(name, b)
	return b, nil
}

// batchWriter writes the Applies of one commit. The Applies of a
// projection share its buckets and the list buckets they append to, and
// only the last checkpoint of each stream is put, since the commit keeps
// all or none of them: a burst of events costs one bucket lookup and one
// checkpoint write per projection, not one per event.
type batchWriter struct {
	tx          *bolt.Tx
	projections map[string]*projectionWriter // by the caller's projection name
}

// projectionWriter is what a commit writes to one projection.
type projectionWriter struct {
	doc         docWriter
	cpb         *bolt.Bucket
	checkpoints map[string]*checkpointPut // stream -> its last, in its applyTx
}

func newBatchWriter(tx *bolt.Tx) *batchWriter {
	return &batchWriter{tx: tx, projections: map[string]*projectionWriter{}}
}

// write puts a checked Apply into the commit; it fails only if bbolt does.
func (bw *batchWriter) write(a *applyTx) error {
	pw, err := bw.projection(a)
	if err != nil {
		return err
	}
	for i := range a.changes {
		if err := pw.doc.apply(&a.changes[i]); err != nil {
			return err
		}
	}
	for i := range a.checkpoints {
		pw.checkpoints[a.checkpoints[i].stream] = &a.checkpoints[i]
	}
	return nil
}

// projection finds (or creates) the buckets of a's projection.
func (bw *batchWriter) projection(a *applyTx) (*projectionWriter, error) {
	if pw, ok := bw.projections[a.projection]; ok {
		return pw, nil
	}
	name := a.name
	models := bw.tx.Bucket(bucketReadModels)
	p := models.Bucket(name)
	var doc, cpb *bolt.Bucket
	var err error
	if p != nil {
		doc, cpb = p.Bucket(bucketDoc), p.Bucket(bucketCheckpoint)
		if doc == nil || cpb == nil {
			return nil, fmt.Errorf("read model %q: %w: the doc or checkpoint bucket is missing", name[1:], codec.ErrCorrupt)
		}
	} else {
		if p, err = models.CreateBucket(name); err == nil {
			doc, err = p.CreateBucket(bucketDoc)
		}
		if err == nil {
			cpb, err = p.CreateBucket(bucketCheckpoint)
		}
		if err != nil {
			return nil, err
		}
	}
	pw := &projectionWriter{doc: docWriter{doc: doc}, cpb: cpb, checkpoints: map[string]*checkpointPut{}}
	bw.projections[a.projection] = pw
	return pw, nil
}

// finish puts each projection's pending values and last checkpoints.
func (bw *batchWriter) finish() error {
	for projection, pw := range bw.projections {
		if err := pw.doc.flush(); err != nil {
			return fmt.Errorf("read model %q: %w", projection, err)
		}
		for _, c := range pw.checkpoints {
			if err := pw.cpb.Put(c.key, c.seq[:]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Document returns the projection's document as a JSON object, keys in
// sorted order, read in one transaction.
func (s *ReadModels) Document(ctx context.Context, projection string) ([]byte, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	name, err := storedName(projection)
	if err != nil {
		return nil, fmt.Errorf("read model %q: %w", projection, readmodel.ErrNotFound)
	}
	var out []byte
	err = s.db.View(func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketReadModels).Bucket(name)
		if p == nil {
			return readmodel.ErrNotFound
		}
		doc := p.Bucket(bucketDoc)
		if doc == nil {
			return fmt.Errorf("%w: the doc bucket is missing", codec.ErrCorrupt)
		}
		var err error
		out, err = appendDocument(out, doc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read model %q: %w", projection, err)
	}
	return out, nil
}

// Value returns the value under key, rendered as Document renders it. A
// value that an Apply not yet committed set outright is answered from what
// it staged, so a projection that reads a key, computes its next value and
// sets it (Reduce) goes on at the pace of staging, not of commits; any
// other key staged waits for the commit, as Document does.
func (s *ReadModels) Value(ctx context.Context, projection, key string) ([]byte, bool, error) {
	if err := s.usable(ctx); err != nil {
		return nil, false, err
	}
	name, err := storedName(projection)
	if err != nil {
		return nil, false, nil // too long to have been stored
	}
	k, err := storedName(key)
	if err != nil {
		return nil, false, nil
	}
	set, changed, err := s.wb.stagedValue(projection, key)
	switch {
	case err != nil:
		return nil, false, err
	case set != nil:
		out, err := appendValue(nil, k, set)
		if err != nil {
			return nil, false, fmt.Errorf("read model %q: %w", projection, err)
		}
		return out, true, nil
	case changed:
		if err := s.wb.barrier(ctx); err != nil {
			return nil, false, err
		}
	}
	var out []byte
	err = s.db.View(func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketReadModels).Bucket(name)
		if p == nil {
			return nil
		}
		doc := p.Bucket(bucketDoc)
		if doc == nil {
			return fmt.Errorf("%w: the doc bucket is missing", codec.ErrCorrupt)
		}
		var err error
		if v := doc.Get(k); v != nil {
			out, err = appendValue(out, k, v)
		} else if items := doc.Bucket(k); items != nil {
			out, err = appendList(out, items)
		}
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("read model %q: %w", projection, err)
	}
	return out, out != nil, nil
}

// Checkpoint returns the projection's checkpoint; an unknown projection has
// an empty one.
func (s *ReadModels) Checkpoint(ctx context.Context, projection string) (readmodel.Checkpoint, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	name, err := storedName(projection)
	if err != nil {
		return readmodel.Checkpoint{}, nil // too long to have been stored
	}
	cp := readmodel.Checkpoint{}
	err = s.db.View(func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketReadModels).Bucket(name)
		if p == nil {
			return nil
		}
		var err error
		cp, err = readCheckpoint(p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint of read model %q: %w", projection, err)
	}
	return cp, nil
}

// Checkpoints returns every stored projection's checkpoint.
func (s *ReadModels) Checkpoints(ctx context.Context) (map[string]readmodel.Checkpoint, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	out := map[string]readmodel.Checkpoint{}
	err := s.db.View(func(tx *bolt.Tx) error {
		models := tx.Bucket(bucketReadModels)
		return models.ForEachBucket(func(k []byte) error {
			cp, err := readCheckpoint(models.Bucket(k))
			if err != nil {
				return fmt.Errorf("read model %q: %w", k[1:], err)
			}
			out[string(k[1:])] = cp
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	return out, nil
}

// readCheckpoint decodes a projection bucket's checkpoint.
func readCheckpoint(p *bolt.Bucket) (readmodel.Checkpoint, error) {
	cpb := p.Bucket(bucketCheckpoint)
	if cpb == nil {
		return nil, fmt.Errorf("%w: the checkpoint bucket is missing", codec.ErrCorrupt)
	}
	cp := readmodel.Checkpoint{}
	return cp, cpb.ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("stream %q: %w: sequence of %d bytes", k[1:], codec.ErrCorrupt, len(v))
		}
		cp[string(k[1:])] = binary.BigEndian.Uint64(v)
		return nil
	})
}

// Delete removes the projection's document and checkpoint. Deleting an
// unknown projection is not an error.
func (s *ReadModels) Delete(ctx context.Context, projection string) error {
	if err := s.readable(ctx); err != nil {
		return err
	}
	name, err := storedName(projection)
	if err != nil {
		return nil // too long to have been stored
	}
	err = s.db.Update(ctx, func(tx *bolt.Tx) error {
		models := tx.Bucket(bucketReadModels)
		if models.Bucket(name) == nil {
			return nil
		}
		return models.DeleteBucket(name)
	})
	if err != nil {
		return fmt.Errorf("delete read model %q: %w", projection, err)
	}
	return nil
}

// Move gives from's doc and checkpoint buckets to to in one transaction,
// once everything staged is committed. bbolt moves a bucket by its root,
// so the cost does not grow with the document.
func (s *ReadModels) Move(ctx context.Context, from, to string) error {
	if err := s.readable(ctx); err != nil {
		return err
	}
	fromName, err := storedName(from)
	if err != nil {
		return fmt.Errorf("move read model %q: %w", from, readmodel.ErrNotFound)
	}
	toName, err := storedName(to)
	if err != nil {
		return fmt.Errorf("move read model %q to %q: %w", from, to, err)
	}
	err = s.db.Update(ctx, func(tx *bolt.Tx) error {
		models := tx.Bucket(bucketReadModels)
		src := models.Bucket(fromName)
		if src == nil {
			return readmodel.ErrNotFound
		}
		dst := models.Bucket(toName)
		if dst == nil {
			var err error
			if dst, err = models.CreateBucket(toName); err != nil {
				return err
			}
		}
		for _, b := range [][]byte{bucketDoc, bucketCheckpoint} {
			if dst.Bucket(b) != nil {
				if err := dst.DeleteBucket(b); err != nil {
					return err
				}
			}
			if err := src.MoveBucket(b, dst); err != nil {
				return err
			}
		}
		return models.DeleteBucket(fromName)
	})
	if err != nil {
		return fmt.Errorf("move read model %q to %q: %w", from, to, err)
	}
	return nil
}

// Close commits what is staged and makes later calls return an error;
// closing again is a no-op. The DB stays open: its owner closes it.
func (s *ReadModels) Close() error {
	s.closed.Store(true)
	s.wb.close()
	return nil
}
