package readmodel

import (
	"context"
	"maps"
)

// CheckpointLister is implemented by stores that can list every stored
// checkpoint, by projection. Stream retention reads it so that a projection
// the engine has not registered again since a restart still holds back the
// events it has not applied.
type CheckpointLister interface {
	Checkpoints(ctx context.Context) (map[string]Checkpoint, error)
}

var _ CheckpointLister = (*Memory)(nil)

// Checkpoints returns a copy of every projection's checkpoint.
func (m *Memory) Checkpoints(ctx context.Context) (map[string]Checkpoint, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.usable(ctx); err != nil {
		return nil, err
	}
	out := make(map[string]Checkpoint, len(m.models))
	for name, md := range m.models {
		out[name] = maps.Clone(md.cp)
	}
	return out, nil
}
