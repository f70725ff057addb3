package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above

	"github.com/eventsourcing-dev/eventsourcing-operator/test/sse"
)

// liveEvent is one event a live read sent: its SSE id and name, and the
// event view of its data line.
type liveEvent struct {
	id    uint64
	event string
	view  streamEvent
}

// liveRead is one open live read (Accept: text/event-stream), parsed as it
// arrives.
type liveRead struct {
	cancel context.CancelFunc
	events chan liveEvent
	// comments are the comment lines other than heartbeats.
	comments chan string
	ended    chan struct{}
}

// openLiveRead starts a live read of url with the headers given, as a
// user's program would (a plain net/http client), and expects 200
// text/event-stream.
func openLiveRead(ctx context.Context, url string, header http.Header) *liveRead {
	GinkgoHelper()
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	Expect(err).NotTo(HaveOccurred())
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	// No client timeout: a live read lasts as long as it is wanted.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
	}
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.StatusCode).To(Equal(http.StatusOK), "GET %s", url)
	Expect(resp.Header.Get("Content-Type")).To(Equal("text/event-stream"), "GET %s", url)
	r := &liveRead{cancel: cancel, events: make(chan liveEvent, 4096), comments: make(chan string, 16), ended: make(chan struct{})}
	go func() {
		defer GinkgoRecover()
		defer close(r.ended)
		defer func() { _ = resp.Body.Close() }()
		_ = sse.Read(resp.Body, func(m sse.Message) bool {
			switch {
			case m.Comment != "":
				if m.Comment != "keep-alive" {
					r.comments <- m.Comment
				}
			case m.Data != "":
				ev := liveEvent{event: m.Event}
				n, err := strconv.ParseUint(m.ID, 10, 64)
				if err != nil {
					Fail(fmt.Sprintf("SSE id %q is not a number: %v", m.ID, err))
				}
				ev.id = n
				if err := json.Unmarshal([]byte(m.Data), &ev.view); err != nil {
					Fail(fmt.Sprintf("data line %q is not an event view: %v", m.Data, err))
				}
				r.events <- ev
			}
			return true
		})
	}()
	DeferCleanup(r.close)
	return r
}

// next returns the next event, failing when none comes within 10 s or the
// server ends the read with a comment first.
func (r *liveRead) next() liveEvent {
	GinkgoHelper()
	select {
	case ev := <-r.events:
		return ev
	case c := <-r.comments:
		Fail("the live read ended with the comment " + strconv.Quote(c) + ", want another event")
	case <-r.ended:
		Fail("the live read ended, want another event")
	case <-time.After(10 * time.Second):
		Fail("no event from the live read within 10 s")
	}
	return liveEvent{}
}

// close hangs up, as a reader that goes away does.
func (r *liveRead) close() {
	r.cancel()
	<-r.ended
}

// acceptedID posts body to url and returns the id of its 202 and its ETag.
func acceptedID(ctx context.Context, url string, body []byte) (string, string, error) {
	resp, err := callAPI(ctx, http.MethodPost, url, "application/json", body, nil)
	if err != nil {
		return "", "", err
	}
	if resp.status != http.StatusAccepted {
		return "", "", fmt.Errorf("POST %s: got %s, want 202", url, resp)
	}
	var accepted struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(resp.body, &accepted); err != nil || accepted.ID == "" {
		return "", "", fmt.Errorf("POST %s: 202 body %s has no id", url, resp.body)
	}
	return accepted.ID, resp.header.Get("ETag"), nil
}

// pacedPoster posts events one after another, a pause between them, and
// keeps what each post gave (an id, an ETag) in the order they were
// accepted.
type pacedPoster struct {
	mu      sync.Mutex
	answers []string
	err     error
	wg      sync.WaitGroup
}

func (p *pacedPoster) accepted() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.answers), p.err
}

// start posts total events, post(i) each, pause apart.
func (p *pacedPoster) start(total int, pause time.Duration, post func(i int) (string, error)) {
	p.wg.Go(func() {
		for i := range total {
			answer, err := post(i)
			p.mu.Lock()
			p.answers, p.err = append(p.answers, answer), err
			p.mu.Unlock()
			if err != nil {
				return
			}
			time.Sleep(pause)
		}
	})
	DeferCleanup(p.wg.Wait)
}

// finish waits for the last post and expects every one accepted.
func (p *pacedPoster) finish() []string {
	GinkgoHelper()
	p.wg.Wait()
	_, err := p.accepted()
	Expect(err).NotTo(HaveOccurred())
	return p.answers
}

// waitAccepted waits until the poster has at least n events accepted.
func (p *pacedPoster) waitAccepted(n int) {
	GinkgoHelper()
	Eventually(func() (int, error) { return p.accepted() }).WithTimeout(10 * time.Second).WithPolling(5 * time.Millisecond).
		Should(BeNumerically(">=", n))
}

var _ = Describe("live reads (Server-Sent Events) from the manager binary", func() {
	It("gives a reader that connects mid-stream and reconnects with Last-Event-ID every event once, in order", func(ctx SpecContext) {
		m := runManager()
		ns := newNamespace(ctx)
		createItemsStream(ctx, ns)
		url := fmt.Sprintf("%s/v1/namespaces/%s/streams/items-events/events", m.api, ns)

		// About 2.5 s of events from one client: the order of its 202s is
		// the stream's order.
		const total = 500
		var poster pacedPoster
		poster.start(total, 5*time.Millisecond, func(i int) (string, error) {
			id, _, err := acceptedID(ctx, url, fmt.Appendf(nil, `{"n":%d}`, i))
			return id, err
		})
		poster.waitAccepted(100)

		// The reader comes in while events keep arriving, and hangs up three
		// times mid-stream. It reconnects as an EventSource does: its first
		// URL (after=0, which would repeat every event) and the id of the
		// last event it saw, which wins.
		var seen []liveEvent
		read := openLiveRead(ctx, url+"?after=0", nil)
		for _, hangUpAt := range []int{150, 250, 350} {
			for len(seen) < hangUpAt {
				seen = append(seen, read.next())
			}
			n, err := poster.accepted()
			Expect(err).NotTo(HaveOccurred())
			Expect(n).To(BeNumerically("<", total), "the reader hangs up while events are still being posted")
			read.close()
			read = openLiveRead(ctx, url+"?after=0", http.Header{"Last-Event-ID": {strconv.FormatUint(seen[len(seen)-1].id, 10)}})
		}
		for len(seen) < total {
			seen = append(seen, read.next())
		}
		ids := poster.finish()

		for i, ev := range seen {
			Expect(ev.id).To(BeEquivalentTo(i+1), "event %d: ids are the sequences, every one once, in order", i)
			Expect(ev.view.Sequence).To(Equal(ev.id), "event %d: the view's sequence is the SSE id", i)
			Expect(ev.view.ID).To(Equal(ids[i]), "event %d is the %d-th event accepted", i, i)
			Expect(ev.event).To(Equal("ItemCreated"), "event %d: the stream's default event name", i)
			Expect(string(ev.view.Payload)).To(MatchJSON(fmt.Sprintf(`{"n":%d}`, i)), "event %d", i)
		}
		// Nothing more: a repeat would show here.
		Consistently(read.events).WithTimeout(300 * time.Millisecond).ShouldNot(Receive())
	}, SpecTimeout(time.Minute))

	It("follows one key live: its events only, versions as ids, resuming with Last-Event-ID", func(ctx SpecContext) {
		m := runManager()
		ns := newNamespace(ctx)
		createItemsStream(ctx, ns)
		keys := fmt.Sprintf("%s/v1/namespaces/%s/streams/items-events/keys/", m.api, ns)

		// order-7 and two other keys take turns; order-7 gets every third event.
		const perKey = 60
		names := []string{"order-7", "order-8", "order-9"}
		var poster pacedPoster
		poster.start(perKey*len(names), 5*time.Millisecond, func(i int) (string, error) {
			_, tag, err := acceptedID(ctx, keys+names[i%len(names)]+"/events", fmt.Appendf(nil, `{"n":%d}`, i))
			return tag, err
		})
		// The read starts with what the key has (read-your-writes), then
		// follows it.
		poster.waitAccepted(30)
		url := keys + "order-7/events"
		var seen []liveEvent
		read := openLiveRead(ctx, url, nil)
		for len(seen) < perKey/2 {
			seen = append(seen, read.next())
		}
		read.close()
		read = openLiveRead(ctx, url, http.Header{"Last-Event-ID": {strconv.FormatUint(seen[len(seen)-1].id, 10)}})
		for len(seen) < perKey {
			seen = append(seen, read.next())
		}
		tags := poster.finish()

		for i, ev := range seen {
			Expect(ev.id).To(BeEquivalentTo(i+1), "event %d: ids are the key's versions, every one once, in order", i)
			Expect(ev.view.Key).To(Equal("order-7"), "event %d: only the key's events", i)
			Expect(ev.view.Version).To(Equal(ev.id), "event %d: the view's version is the SSE id", i)
			Expect(tags[3*i]).To(Equal(fmt.Sprintf(`"%d"`, ev.id)), "event %d: the version its 202 gave", i)
			Expect(string(ev.view.Payload)).To(MatchJSON(fmt.Sprintf(`{"n":%d}`, 3*i)), "event %d", i)
		}
		Consistently(read.events).WithTimeout(300 * time.Millisecond).ShouldNot(Receive())
	}, SpecTimeout(time.Minute))
})
