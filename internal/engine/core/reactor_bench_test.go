package core_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/reactor"
)

var benchPayload = []byte(`{"sku":"A-1","amount":12}`)

// benchKeys is how many keys the delivery benchmark spreads its events over.
const benchKeys = 1000

// BenchmarkReactorDelivery puts the engine's deliveries (KeyOrdered, 16 in
// flight, events over 1,000 keys) beside a bare Go HTTP client posting the
// same requests to the same sink with 16 workers: the reference of what
// one process can push to a local sink that answers 200 at once.
func BenchmarkReactorDelivery(b *testing.B) {
	var received atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		received.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer sink.Close()
	replySink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h.Set("ce-specversion", "1.0")
		h.Set("ce-type", "ShipmentRequested")
		h.Set("ce-source", "/shipping")
		h.Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"carrier":"post"}`))
	}))
	defer replySink.Close()

	b.Run("bare-go-client-16-workers", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		jobs := make(chan int, 1024)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for i := range jobs {
					req, _ := http.NewRequest(http.MethodPost, sink.URL, bytes.NewReader(benchPayload))
					// The same CloudEvents binary-mode headers a delivery carries.
					h := req.Header
					h.Set("Content-Type", "application/json")
					h.Set("ce-specversion", "1.0")
					h.Set("ce-id", fmt.Sprintf("0195f7c2-5a8e-7b1c-9d0e-%012d", i))
					h.Set("ce-type", "OrderPaid")
					h.Set("ce-source", "/namespaces/ns/streams/orders")
					h.Set("ce-partitionkey", fmt.Sprintf("k-%d", i%benchKeys))
					h.Set("ce-time", time.Now().UTC().Format(time.RFC3339Nano))
					h.Set("ce-sequence", fmt.Sprint(i+1))
					h.Set("ce-correlationid", fmt.Sprintf("0195f7c2-5a8e-7b1c-9d0e-%012d", i))
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			})
		}
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
	})

	b.Run("reactor-key-ordered-16", func(b *testing.B) { benchReactor(b, sink.URL, "") })
	// The sink answers each delivery with one event, appended to a reply
	// stream through ingest (validation, id derivation, the outbox).
	b.Run("reactor-key-ordered-16-with-replies", func(b *testing.B) { benchReactor(b, replySink.URL, "ns/shipments") })
}

// benchReactor measures a KeyOrdered reactor with 16 in flight delivering
// b.N events over benchKeys keys to the sink; with a reply stream, the
// sink's answers are appended there.
func benchReactor(b *testing.B, sinkURL, replyStream string) {
	e, err := core.New(core.Config{AllowPrivateSinks: true, PollingInterval: 10 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		_ = e.Close()
	}()
	for _, name := range []string{"ns/orders", "ns/shipments"} {
		if err := e.ApplyStream(core.StreamSpec{Name: name, DefaultEventName: "OrderPaid"}); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.ApplyReactor(ctx, core.ReactorSpec{
		Name: "ns/ship", Streams: []string{"ns/orders"}, SinkURL: sinkURL, ReplyStream: replyStream,
		Ordering: reactor.KeyOrdered, MaxInFlight: 16,
	}); err != nil {
		b.Fatal(err)
	}
	events := make([]core.Event, 100)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += len(events) {
		n := min(len(events), b.N-i)
		for j := range n {
			events[j] = core.Event{Key: fmt.Sprintf("k-%d", (i+j)%benchKeys), Payload: benchPayload}
		}
		for {
			_, err := e.Ingest(ctx, "ns/orders", events[:n])
			if err == nil {
				break
			}
			time.Sleep(time.Millisecond) // a full outbox: the reactor is behind
		}
	}
	for {
		st, err := e.ReactorStats(ctx, "ns/ship")
		if err != nil {
			b.Fatal(err)
		}
		if st.Delivered+st.DeadLettered >= uint64(b.N) {
			if st.DeadLettered > 0 {
				b.Fatalf("%d events dead-lettered", st.DeadLettered)
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
}
