package core

import (
	"context"
	"errors"
	"fmt"
)

// ErrKeyNotFound means a query names a key the projection's read model
// holds no value under.
var ErrKeyNotFound = errors.New("key not found")

// QueryKey returns the value under key in the projection's read model as
// JSON, as the document that Query returns holds it. During a rebuild it is
// the value of the read model queries read (see ApplyProjection).
func (e *Engine) QueryKey(ctx context.Context, projection, key string) ([]byte, error) {
	e.mu.Lock()
	_, ok := e.projections[projection]
	ok = ok || e.standby.hasProjection(projection)
	e.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrProjectionNotFound, projection)
	}
	v, found, err := e.cfg.ReadModels.Value(ctx, projection, key)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %q in projection %q", ErrKeyNotFound, key, projection)
	}
	return v, nil
}
