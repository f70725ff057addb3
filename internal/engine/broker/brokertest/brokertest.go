// Package brokertest is the conformance suite every broker.Broker backend
// runs. Nothing in the Broker contract is optional, so unlike the storage
// suites it has no Features: a backend's test calls Run with a constructor.
//
//	func TestMemoryConformance(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T) broker.Broker { return broker.NewMemory() })
//	}
//
// The suite only uses the Broker and Subscription interfaces and waits with
// deadlines, never fixed sleeps, so slower backends pass as long as they
// deliver within enginetest.Timeout.
package brokertest

import (
	"slices"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/broker"
)

// behaviour is one subtest of the suite, run on a fresh broker.
type behaviour struct {
	name string
	run  func(t *testing.T, b broker.Broker)
}

// Run runs every behaviour of the suite as a subtest, each on a broker made
// by newBroker. The suite closes each broker when its subtest ends.
func Run(t *testing.T, newBroker func(t *testing.T) broker.Broker) {
	t.Helper()
	all := slices.Concat(deliveryBehaviours, backpressureBehaviours, closeBehaviours, concurrencyBehaviours)
	for _, bh := range all {
		t.Run(bh.name, func(t *testing.T) {
			b := newBroker(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close() = %v, want nil", err)
				}
			})
			bh.run(t, b)
		})
	}
}
