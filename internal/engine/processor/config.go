package processor

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/eventstore"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/outbox"
)

// Defaults for the zero values of Config.
const (
	DefaultBatchSize       = 256
	DefaultPollingInterval = 100 * time.Millisecond
	DefaultDrainTimeout    = 5 * time.Second
)

// maxBackoffPolls caps the wait after a failure at this many polling
// intervals: long enough not to hammer a failing store, short enough to
// recover soon after it heals.
const maxBackoffPolls = 10

// Config is what a Processor moves messages between and how.
type Config struct {
	// Outbox holds the accepted messages. Required.
	Outbox outbox.Outbox
	// Store is where they are appended. Required.
	Store eventstore.Store
	// Broker is where the stored events are published. Required.
	Broker broker.Broker
	// BatchSize is the most entries taken from the outbox at once; 0 means
	// DefaultBatchSize.
	BatchSize int
	// PollingInterval is how often the outbox is checked when no signal
	// came (a safety net), and the first wait after a failure; 0 means
	// DefaultPollingInterval.
	PollingInterval time.Duration
	// BatchDelay is how long the processor waits, once signalled, for a
	// fuller batch when fewer than BatchSize entries are pending: fewer,
	// larger appends where each append has a fixed cost (a disk store's
	// commit and its fsyncs). It delays what reads and projections see,
	// never a 202. 0 dispatches at once.
	BatchDelay time.Duration
	// DrainTimeout bounds how long Run keeps dispatching after its ctx
	// ended; 0 means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Logger receives failures (at error) and shutdown notes; nil discards.
	Logger *slog.Logger
	// Stored, when set, is called with the events of every successful
	// Append, as stored, before they are published: the version table
	// (package versions) hands what it reserved for them over to the store.
	Stored func([]engine.Message)
	// ObserveBatch, when set, is told of every batch taken from the
	// outbox: its entries and how long storing, publishing and marking
	// them took, whether or not that succeeded.
	ObserveBatch func(entries int, took time.Duration)
}

// setDefaults fills the zero values.
func (c *Config) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.PollingInterval == 0 {
		c.PollingInterval = DefaultPollingInterval
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every field that cannot be used.
func (c Config) Validate() error {
	var errs []error
	if c.Outbox == nil {
		errs = append(errs, errors.New("outbox is required"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if c.Broker == nil {
		errs = append(errs, errors.New("broker is required"))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch size %d is negative", c.BatchSize))
	}
	if c.PollingInterval < 0 {
		errs = append(errs, fmt.Errorf("polling interval %s is negative", c.PollingInterval))
	}
	if c.BatchDelay < 0 {
		errs = append(errs, fmt.Errorf("batch delay %s is negative", c.BatchDelay))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain timeout %s is negative", c.DrainTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid processor config: %w", err)
	}
	return nil
}
