package bench

import (
	"testing"
	"time"
)

// hopEvent is what the bare channel carries: an ID and a payload, like a
// message without any of a broker's bookkeeping.
type hopEvent struct {
	id      int
	payload []byte
}

// BenchmarkGoChannelHop measures one event sent from one goroutine to another
// over a buffered Go channel: the floor any in-process broker pays.
func BenchmarkGoChannelHop(b *testing.B) {
	// Same buffer as the Watermill GoChannel's output channel.
	events := make(chan hopEvent, 1000)
	received := make(chan int)
	go func() {
		n := 0
		for range events {
			n++
		}
		received <- n
	}()

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		events <- hopEvent{id: i, payload: payload}
	}
	close(events)
	got := <-received
	b.StopTimer()
	if got != b.N {
		b.Fatalf("consumer received %d events, want %d", got, b.N)
	}
	reportEventsPerSecond(b, start)
}
