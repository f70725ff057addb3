package processor

import (
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

func TestNewFillsDefaults(t *testing.T) {
	p, err := New(Config{Outbox: outbox.NewMemory(0), Store: eventstore.NewMemory(), Broker: broker.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.BatchSize != DefaultBatchSize || p.cfg.PollingInterval != DefaultPollingInterval ||
		p.cfg.DrainTimeout != DefaultDrainTimeout || p.cfg.Logger == nil {
		t.Fatalf("defaults: got batch %d polling %s drain %s logger %v, want %d %s %s and a logger",
			p.cfg.BatchSize, p.cfg.PollingInterval, p.cfg.DrainTimeout, p.cfg.Logger,
			DefaultBatchSize, DefaultPollingInterval, DefaultDrainTimeout)
	}
}

func TestBackoffDoublesUpToTenPollingIntervals(t *testing.T) {
	p := &Processor{cfg: Config{PollingInterval: 100 * time.Millisecond}}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	waits := p.newBackoff()
	for i, w := range want {
		if got := waits.Next(); got != w*time.Millisecond {
			t.Fatalf("backoff %d: got %s, want %s", i+1, got, w*time.Millisecond)
		}
	}
}
