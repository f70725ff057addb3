package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
)

// crashClient posts events 0, 1, 2, ... one at a time, each with its own
// Idempotency-Key, retrying an event until it gets a 202 (as a client that
// saw a connection reset or a 503 must), and remembers which got one.
type crashClient struct {
	id int
	// path is where event i is posted, below the API's base URL.
	path     func(i int) string
	accepted []int // event numbers answered 202, in order
}

// crashClients are crashClients posting through a network, from
// startCrashClients until stop.
type crashClients struct {
	clients []*crashClient
	total   atomic.Int64 // 202s so far, all clients
	stop    func()       // ends the posting and waits for the clients
}

// startCrashClients starts n clients posting through nw; client c posts its
// event i to path(c, i).
func startCrashClients(ctx context.Context, nw *network, n int, path func(c, i int) string) *crashClients {
	cc := &crashClients{clients: make([]*crashClient, n)}
	postCtx, stopPost := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for c := range cc.clients {
		cc.clients[c] = &crashClient{id: c, path: func(i int) string { return path(c, i) }}
		wg.Go(func() { cc.clients[c].run(postCtx, nw, &cc.total) })
	}
	cc.stop = func() {
		stopPost()
		wg.Wait()
	}
	return cc
}

func (c *crashClient) key(i int) string { return fmt.Sprintf("client%d-event%d", c.id, i) }

// run posts through nw until ctx ends.
func (c *crashClient) run(ctx context.Context, nw *network, total *atomic.Int64) {
	client := nw.client()
	for i := 0; ctx.Err() == nil; {
		url := nw.api() + c.path(i)
		body := fmt.Appendf(nil, `{"client":%d,"event":%d}`, c.id, i)
		resp, err := callAPIWith(ctx, client, http.MethodPost, url, "application/json", body,
			http.Header{"Idempotency-Key": {c.key(i)}})
		if err == nil && resp.status == http.StatusAccepted {
			c.accepted = append(c.accepted, i)
			total.Add(1)
			i++
			continue
		}
		// Down, restarting, not reconciled yet (404) or full (503): back
		// off a little and send the same event again.
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var _ = Describe("durable storage", func() {
	It("keeps every event that got a 202 exactly once and in order across SIGKILLs, and read models equal a fold of the stream",
		func(ctx SpecContext) {
			dataDir := GinkgoT().TempDir()
			ns := newNamespace(ctx)
			applyItemsStream(ctx, ns)

			const clients, kills, perRound = 8, 3, 150
			nw := newNetwork(0)
			cc := startCrashClients(ctx, nw, clients, func(int, int) string {
				return fmt.Sprintf("/v1/namespaces/%s/streams/items-events/events", ns)
			})
			defer cc.stop()
			cs, total := cc.clients, &cc.total

			var m *managerProcess
			for round := 0; round <= kills; round++ {
				m = runManager("--storage=disk", "--data-dir="+dataDir)
				nw.use(m.api)
				want := total.Load() + perRound
				Eventually(total.Load).WithTimeout(90*time.Second).Should(BeNumerically(">=", want),
					"round %d: the clients should get %d more 202s from the restarted manager", round, perRound)
				if round < kills {
					Expect(m.cmd.Process.Signal(syscall.SIGKILL)).To(Succeed())
					Eventually(m.exited).WithTimeout(10 * time.Second).Should(Receive())
				}
			}
			cc.stop()

			// Every event that got a 202 is stored exactly once; so is an
			// event sent again after its first answer was lost. Each client's
			// events are stored in the order it sent them.
			url := fmt.Sprintf("%s/v1/namespaces/%s/streams/items-events/events", m.api, ns)
			var stored []streamEvent
			// The outbox processor stores accepted events moments later.
			Eventually(func(g Gomega) {
				stored = stored[:0]
				for {
					page, err := readStream(ctx, url, uint64(len(stored)))
					g.Expect(err).NotTo(HaveOccurred())
					if len(page) == 0 {
						break
					}
					stored = append(stored, page...)
				}
				ids := map[string]bool{}
				for _, ev := range stored {
					ids[ev.ID] = true
				}
				for _, c := range cs {
					for _, i := range c.accepted {
						g.Expect(ids).To(HaveKey(c.key(i)), "event %s got a 202 and is not stored", c.key(i))
					}
				}
			}).WithTimeout(60 * time.Second).Should(Succeed())
			seen := map[string]int{}
			last := make([]int, clients)
			for i := range last {
				last[i] = -1
			}
			for i, ev := range stored {
				Expect(ev.Sequence).To(BeEquivalentTo(i+1), "sequences are contiguous")
				seen[ev.ID]++
				var p struct{ Client, Event int }
				Expect(json.Unmarshal(ev.Payload, &p)).To(Succeed())
				Expect(ev.ID).To(Equal(cs[p.Client].key(p.Event)), "the Idempotency-Key is the event id")
				Expect(p.Event).To(BeNumerically(">", last[p.Client]), "client %d's events out of order at sequence %d", p.Client, i+1)
				last[p.Client] = p.Event
			}
			for id, n := range seen {
				Expect(n).To(Equal(1), "event %s stored %d times", id, n)
			}
			acceptedTotal := 0
			for _, c := range cs {
				for _, i := range c.accepted {
					Expect(seen).To(HaveKey(c.key(i)), "event %s got a 202 and is not stored", c.key(i))
				}
				acceptedTotal += len(c.accepted)
			}
			Expect(acceptedTotal).To(BeNumerically(">=", (kills+1)*perRound))
			GinkgoWriter.Printf("%d events accepted, %d stored, over %d SIGKILLs\n", acceptedTotal, len(stored), kills)

			// The read model is the fold of the stored stream: every payload,
			// in stream order, once. The stream is read again on every try:
			// each client's last request, cut off when posting stopped, may
			// have reached the outbox log and be stored (and folded) after
			// the reads above, which wait only for the events that got a 202.
			// (A request a SIGKILL cut off is sent again until it gets one.)
			query := getJSON(ctx, fmt.Sprintf("%s/v1/namespaces/%s/projections/items", m.api, ns))
			Eventually(func() error {
				var all []json.RawMessage
				for {
					page, err := readStream(ctx, url, uint64(len(all)))
					if err != nil {
						return err
					}
					if len(page) == 0 {
						break
					}
					for _, ev := range page {
						all = append(all, ev.Payload)
					}
				}
				return foldDiff(query, all)
			}).WithTimeout(2 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
		}, SpecTimeout(6*time.Minute))

	It("refuses to start on a damaged data file, naming it, and leaves the file as it was", func(_ SpecContext) {
		dataDir := GinkgoT().TempDir()
		file := filepath.Join(dataDir, "eventsourcing.db")
		damaged := bytes.Repeat([]byte("not a data file "), 512)
		Expect(os.WriteFile(file, damaged, 0o600)).To(Succeed())
		m := runManager("--storage=disk", "--data-dir="+dataDir)
		var err error
		Eventually(m.exited).WithTimeout(30 * time.Second).Should(Receive(&err))
		Expect(err).To(HaveOccurred(), "the manager should exit with an error")
		Expect(string(m.log.Contents())).To(ContainSubstring(file))
		Expect(string(m.log.Contents())).To(ContainSubstring("damaged"))
		Expect(os.ReadFile(file)).To(Equal(damaged), "never a silent reset")
	}, SpecTimeout(time.Minute))
})

// foldDiff compares the Append read model with the stored payloads, and
// says where they first differ: a failure then tells a missing event from a
// repeated or misplaced one.
func foldDiff(query func() (string, error), stored []json.RawMessage) error {
	doc, err := query()
	if err != nil {
		return err
	}
	var got struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(doc), &got); err != nil {
		return fmt.Errorf("read model %q: %w", doc, err)
	}
	for i := range min(len(got.Items), len(stored)) {
		if !bytes.Equal(compact(got.Items[i]), compact(stored[i])) {
			return fmt.Errorf("read model item %d is %s, stream event %d is %s (%d items, %d stored)",
				i, got.Items[i], i+1, stored[i], len(got.Items), len(stored))
		}
	}
	if len(got.Items) != len(stored) {
		n := min(len(got.Items), len(stored))
		return fmt.Errorf("read model has %d items, the stream %d events; beyond the shorter: read model %s, stream %s",
			len(got.Items), len(stored), got.Items[n:], stored[n:])
	}
	return nil
}

func compact(b []byte) []byte {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return b
	}
	return out.Bytes()
}
