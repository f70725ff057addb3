package readmodel_test

import (
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/readmodel/readmodeltest"
)

func TestMemoryConformance(t *testing.T) {
	readmodeltest.Run(t, readmodeltest.Features{ListCheckpoints: true},
		func(*testing.T, string) readmodel.Store { return readmodel.NewMemory() })
}
