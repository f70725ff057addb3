package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Leadership makes a reconciler run on every replica of the manager, for
// storage the replicas share (NATS): each replica serves ingest, reads and
// queries, so each replica's engine must know every spec, while only the
// leader writes to the API server (finalizers, status). A reconciler
// without one runs on the leader alone and always writes.
//
// The manager gives it its election: &Leadership{Elected: mgr.Elected()}.
type Leadership struct {
	// Elected is closed once this replica leads: the manager's Elected().
	// A manager that loses the lead stops, so a replica leads only once.
	Elected <-chan struct{}
}

// resyncRetry is the wait before listing again when the resync could not
// list a kind.
const resyncRetry = time.Second

// Leading reports whether this replica leads. A nil Leadership always
// does: its reconciler runs on the leader only.
func (l *Leadership) Leading() bool {
	if l == nil {
		return true
	}
	select {
	case <-l.Elected:
		return true
	default:
		return false
	}
}

// build makes b's controller run on every replica, and adds a resync: once
// this replica is elected, every object of the kind newList lists (read
// with c) is reconciled again, so the new leader writes each one's
// finalizer and status at once, not at its next refresh (Pipelines have
// none). A nil Leadership leaves b as it is.
func (l *Leadership) build(b *builder.Builder, c client.Reader, newList func() client.ObjectList) *builder.Builder {
	if l == nil {
		return b
	}
	return b.WithOptions(crcontroller.Options{NeedLeaderElection: ptr.To(false)}).
		WatchesRawSource(source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			go l.resync(ctx, q, c, newList)
			return nil
		}))
}

// resync waits until this replica is elected, then adds every object
// newList lists to q.
func (l *Leadership) resync(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request],
	c client.Reader, newList func() client.ObjectList,
) {
	select {
	case <-ctx.Done():
		return
	case <-l.Elected:
	}
	for {
		list := newList()
		err := c.List(ctx, list)
		if err == nil {
			for _, req := range requestsFor(list) {
				q.Add(req)
			}
			return
		}
		logf.FromContext(ctx).Error(err, "list objects to reconcile on becoming the leader; retrying", "kind", fmt.Sprintf("%T", list))
		select {
		case <-ctx.Done():
			return
		case <-time.After(resyncRetry):
		}
	}
}
