package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads as prose only when dot-imported
	. "github.com/onsi/gomega"    //nolint:revive // as above
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
)

// keyLedger is what the clients of one key know together: the highest
// version a 202 has named to any of them. A read that starts after that
// 202 must show at least that version, and a 412 answered after it must
// name at least that version, whatever restarts happened in between.
type keyLedger struct {
	key      string
	highest  atomic.Uint64
	accepted atomic.Int64 // 202s, for the spec to pace its SIGKILLs
}

func (l *keyLedger) acknowledged(v uint64) {
	for {
		cur := l.highest.Load()
		if v <= cur || l.highest.CompareAndSwap(cur, v) {
			return
		}
	}
}

// appendOutcome is the definitive answer to one append request.
type appendOutcome struct {
	id      string
	ifMatch uint64
	status  int    // 202 or 412
	version uint64 // 202: the version it named; 412: the key's version it named
	// resent says the request was sent again after an unknown outcome;
	// answered is when its definitive answer came.
	resent   bool
	answered time.Time
	// sendings says, for a failure's report, where each sending of the
	// request went and what came back.
	sendings []string
}

// keyWriter is the write side of an application on one entity, as a correct
// client behaves: it reads the key's version, appends with If-Match on it,
// and when it does not learn the outcome (no answer, or a 503 or 404 while
// the manager restarts) sends the very same request again, with the same
// Idempotency-Key, until it gets a 202 or a 412. A retried append that was
// accepted before answers its original version, so nothing is appended twice
// and a 412 means the event was not stored.
type keyWriter struct {
	client   int
	ledger   *keyLedger
	outcomes []appendOutcome
	resends  int      // requests sent again after an unknown outcome
	faults   []string // answers that break the contract
}

func (w *keyWriter) faultf(format string, args ...any) {
	w.faults = append(w.faults, fmt.Sprintf("client %d, key %s: ", w.client, w.ledger.key)+fmt.Sprintf(format, args...))
}

// etagVersion parses an ETag of the form "N".
func etagVersion(tag string) (uint64, error) {
	unquoted, err := strconv.Unquote(tag)
	if err != nil || !strings.HasPrefix(tag, `"`) {
		return 0, fmt.Errorf("ETag %q is not a quoted version", tag)
	}
	return strconv.ParseUint(unquoted, 10, 64)
}

// network is the clients' way to the managers: the addresses of those
// running, and the answers it loses. A lost answer is one to a request the
// manager did decide, as when a connection breaks after the request went
// out; the client cannot tell it from a request that never arrived.
type network struct {
	apis atomic.Pointer[[]string] // the running managers' base URLs
	turn atomic.Uint64            // of the next request, round robin
	// loseOneIn loses one answer to a POST in that many, at random; 0
	// loses none but in a blackout.
	loseOneIn int
	blackout  atomic.Bool // every answer to a POST is lost: the moments before a SIGKILL
}

// newNetwork is a network losing one answer in loseOneIn. Nothing listens
// at its first address: name the managers with use once they run.
func newNetwork(loseOneIn int) *network {
	n := &network{loseOneIn: loseOneIn}
	n.use("http://127.0.0.1:1")
	return n
}

// use sends the requests that follow to the managers at apis, in turn:
// a request sent again after an unknown outcome goes to the next one.
func (n *network) use(apis ...string) { n.apis.Store(&apis) }

// api is the base URL of the manager the next request goes to.
func (n *network) api() string {
	apis := *n.apis.Load()
	return apis[(n.turn.Add(1)-1)%uint64(len(apis))]
}

// unknownOutcome says whether an answer leaves the request's fate unknown:
// no answer at all, a 503 (full or shutting down), or a 404 before the
// restarted manager has the Stream again.
func (n *network) unknownOutcome(resp apiResponse, err error) bool {
	return err != nil || resp.status == http.StatusServiceUnavailable || resp.status == http.StatusNotFound
}

var errAnswerLost = errors.New("the connection broke before the answer came")

func (n *network) client() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: answerLosingTransport{n, http.DefaultTransport.(*http.Transport).Clone()},
	}
}

type answerLosingTransport struct {
	n    *network
	base http.RoundTripper
}

// RoundTrip loses answers to POSTs: all of them during a blackout (reads
// still answer, so every client gets to send an append the manager
// decides), one in loseOneIn at other times.
func (t answerLosingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if r.Method == http.MethodPost && (t.n.blackout.Load() || t.n.loseOneIn > 0 && rand.N(t.n.loseOneIn) == 0) {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return nil, errAnswerLost
	}
	return resp, nil
}

// run appends until stop is set, then finishes the append in hand: every
// request it sent ends with a definitive answer.
func (w *keyWriter) run(ctx context.Context, nw *network, path string, stop *atomic.Bool) {
	hc := nw.client()
	resent := false
	var sendings []string
	send := func(method string, body []byte, header http.Header) (apiResponse, bool) {
		resent, sendings = false, nil
		for ctx.Err() == nil {
			api := nw.api()
			resp, err := callAPIWith(ctx, hc, method, api+path, "application/json", body, header)
			if err != nil {
				sendings = append(sendings, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), api, err))
			} else {
				sendings = append(sendings, fmt.Sprintf("%s %s: %d %s", time.Now().Format("15:04:05.000"), api, resp.status, resp.header.Get("ETag")))
			}
			if !nw.unknownOutcome(resp, err) {
				return resp, true
			}
			resent = true
			if method == http.MethodPost {
				w.resends++
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
		return apiResponse{}, false
	}
	for !stop.Load() && len(w.faults) == 0 {
		floor := w.ledger.highest.Load()
		resp, ok := send(http.MethodGet, nil, nil)
		if !ok {
			return
		}
		var page keyEventsPage
		if resp.status != http.StatusOK || json.Unmarshal(resp.body, &page) != nil {
			w.faultf("GET answered %s", resp)
			return
		}
		if page.Version < floor {
			w.faultf("a read answered version %d after a 202 had named version %d: an acknowledged append is lost", page.Version, floor)
		}
		if tag := resp.header.Get("ETag"); tag != strconv.Quote(strconv.FormatUint(page.Version, 10)) {
			w.faultf("a read of version %d answered ETag %q", page.Version, tag)
		}

		out := appendOutcome{
			id:      fmt.Sprintf("%s-client%d-append%d", w.ledger.key, w.client, len(w.outcomes)),
			ifMatch: page.Version,
		}
		floor = w.ledger.highest.Load()
		header := http.Header{"Idempotency-Key": {out.id}, "If-Match": {strconv.Quote(strconv.FormatUint(out.ifMatch, 10))}}
		resp, ok = send(http.MethodPost, fmt.Appendf(nil, `{"client":%d}`, w.client), header)
		if !ok {
			return
		}
		out.status, out.resent, out.answered, out.sendings = resp.status, resent, time.Now(), sendings
		tagVersion, tagErr := etagVersion(resp.header.Get("ETag"))
		switch resp.status {
		case http.StatusAccepted:
			var accepted struct {
				ID      string `json:"id"`
				Key     string `json:"key"`
				Version uint64 `json:"version"`
			}
			if err := json.Unmarshal(resp.body, &accepted); err != nil {
				w.faultf("202 body %s: %v", resp.body, err)
				return
			}
			out.version = accepted.Version
			switch {
			case accepted.ID != out.id || accepted.Key != w.ledger.key:
				w.faultf("the 202 to %s names event %q of key %q", out.id, accepted.ID, accepted.Key)
			case out.version != out.ifMatch+1:
				w.faultf("If-Match %d of %s answered 202 with version %d", out.ifMatch, out.id, out.version)
			case tagErr != nil || tagVersion != out.version:
				w.faultf("the 202 naming version %d has ETag %q", out.version, resp.header.Get("ETag"))
			}
			w.ledger.acknowledged(out.version)
			w.ledger.accepted.Add(1)
		case http.StatusPreconditionFailed:
			out.version = tagVersion
			switch {
			case tagErr != nil:
				w.faultf("a 412 to %s: %v", out.id, tagErr)
			case !strings.HasSuffix(problemType(resp.body), "#version-conflict"):
				w.faultf("a 412 to %s is not a version conflict: %s", out.id, resp.body)
			case out.version <= out.ifMatch:
				// The version read was there, versions never go back, and
				// the condition failed: the key is past it.
				w.faultf("If-Match %d of %s answered 412 with ETag %d", out.ifMatch, out.id, out.version)
			case out.version < floor:
				w.faultf("a 412 to %s names version %d after a 202 had named version %d", out.id, out.version, floor)
			}
		default:
			w.faultf("the append %s answered %s", out.id, resp)
			return
		}
		w.outcomes = append(w.outcomes, out)
	}
}

// keyEventsPage is the answer to a read of a key.
type keyEventsPage struct {
	Events  []streamEvent `json:"events"`
	Next    uint64        `json:"next"`
	Version uint64        `json:"version"`
}

func problemType(body []byte) string {
	var p struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(body, &p)
	return p.Type
}

// readWholeKey reads every event of a key, page by page, and its version.
func readWholeKey(ctx context.Context, url string) ([]streamEvent, uint64) {
	GinkgoHelper()
	var events []streamEvent
	var version uint64
	for after := uint64(0); ; {
		body, err := getJSON(ctx, fmt.Sprintf("%s?after=%d&limit=1000", url, after))()
		Expect(err).NotTo(HaveOccurred())
		var page keyEventsPage
		Expect(json.Unmarshal([]byte(body), &page)).To(Succeed(), "key page %s", body)
		if after == 0 {
			version = page.Version
		}
		Expect(page.Version).To(Equal(version), "the key changed while nobody wrote to it")
		if len(page.Events) == 0 {
			return events, version
		}
		events = append(events, page.Events...)
		after = page.Next
	}
}

// keyWriters are keyWriters racing on keys, from startKeyWriters until
// finish.
type keyWriters struct {
	writers []*keyWriter
	stop    atomic.Bool
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

// startKeyWriters starts writersOf[k] writers on ledgers[k] through nw;
// path gives a key's path below the API's base URL.
func startKeyWriters(ctx context.Context, nw *network, ledgers []*keyLedger, writersOf []int, path func(*keyLedger) string) *keyWriters {
	kw := &keyWriters{}
	// Cancelled only when the spec fails midway (abandon): otherwise the
	// writers finish the request in hand (finish).
	writeCtx, cancel := context.WithCancel(ctx)
	kw.cancel = cancel
	for k, l := range ledgers {
		for range writersOf[k] {
			w := &keyWriter{client: len(kw.writers), ledger: l}
			kw.writers = append(kw.writers, w)
			kw.wg.Go(func() { w.run(writeCtx, nw, path(l), &kw.stop) })
		}
	}
	return kw
}

// finish stops the writers once the request in hand has a definitive
// answer, and returns them.
func (kw *keyWriters) finish() []*keyWriter {
	kw.stop.Store(true)
	kw.wg.Wait()
	return kw.writers
}

// abandon stops the writers at once, their requests in hand cut off: for a
// spec that failed midway (deferred; after finish it does nothing more).
func (kw *keyWriters) abandon() {
	kw.stop.Store(true)
	kw.cancel()
	kw.wg.Wait()
}

// keyAcks is what the writers of one key were told, checked against the
// key's stored events.
type keyAcks struct {
	ackedAt    map[string]uint64    // event id: the version its 202 named
	acceptedAt map[string]time.Time // event id: when the stored event was accepted
	resent     []appendOutcome      // 202s that came only to a resend
	conflicts  int                  // appends answered 412
}

// checkKeyAcks reads the key at keyURL and checks it against what the
// writers of l were told: no version named by two 202s, versions from 1
// without a gap, no event stored twice or stored after a 412, and exactly
// the acknowledged events stored, each at the version its 202 named.
func checkKeyAcks(ctx context.Context, writers []*keyWriter, l *keyLedger, keyURL string) keyAcks {
	GinkgoHelper()
	acks := keyAcks{ackedAt: map[string]uint64{}, acceptedAt: map[string]time.Time{}}
	ackAt := map[uint64]appendOutcome{}
	refused := map[string]bool{}
	for _, w := range writers {
		if w.ledger != l {
			continue
		}
		for _, o := range w.outcomes {
			if o.status == http.StatusPreconditionFailed {
				refused[o.id] = true
				acks.conflicts++
				continue
			}
			Expect(ackAt).NotTo(HaveKey(o.version), "version %d of %s was named by two 202s: %+v and %+v", o.version, l.key, ackAt[o.version], o)
			ackAt[o.version] = o
			acks.ackedAt[o.id] = o.version
			if o.resent {
				acks.resent = append(acks.resent, o)
			}
		}
	}

	events, version := readWholeKey(ctx, keyURL)
	storedAt := map[string]uint64{}
	for i, ev := range events {
		acks.acceptedAt[ev.ID] = ev.Time
		Expect(ev.Version).To(BeEquivalentTo(i+1), "%s: versions run from 1 without a gap", l.key)
		Expect(ev.Key).To(Equal(l.key))
		Expect(storedAt).NotTo(HaveKey(ev.ID), "%s: event %s is stored twice", l.key, ev.ID)
		storedAt[ev.ID] = ev.Version
		Expect(refused).NotTo(HaveKey(ev.ID), "%s: event %s is stored, but its append was answered 412", l.key, ev.ID)
	}
	// Exactly the acknowledged events are stored, each at the version its
	// 202 named; every request ended in a 202 or a 412, so nothing else
	// can be.
	Expect(storedAt).To(Equal(acks.ackedAt), "%s: the stored events are the acknowledged ones at their versions", l.key)
	Expect(version).To(BeEquivalentTo(len(acks.ackedAt)), "%s: the version is the number of acknowledged appends", l.key)
	return acks
}

var _ = Describe("entity keys on durable storage", func() {
	It("give racing If-Match appends distinct versions without gaps and lose no 202 across SIGKILLs", func(ctx SpecContext) {
		dataDir := GinkgoT().TempDir()
		ns := newNamespace(ctx)
		Expect(k8sClient.Create(ctx, &esv1.Stream{
			ObjectMeta: metav1.ObjectMeta{Name: "accounts", Namespace: ns},
			Spec:       esv1.StreamSpec{DefaultEventName: "Deposited"},
		})).To(Succeed())

		// 24 clients race on one key and 8 on another, whose versions must
		// not interfere.
		ledgers := []*keyLedger{{key: "account-a"}, {key: "account-b"}}
		writersOf := []int{24, 8}
		const kills, perRound = 3, 60
		keyPath := func(l *keyLedger) string {
			return fmt.Sprintf("/v1/namespaces/%s/streams/accounts/keys/%s/events", ns, l.key)
		}
		acknowledged := func() int64 { return ledgers[0].accepted.Load() + ledgers[1].accepted.Load() }

		var starts []time.Time // of each manager process, in order
		nw := newNetwork(16)
		kw := startKeyWriters(ctx, nw, ledgers, writersOf, keyPath)
		defer kw.abandon()

		var m *managerProcess
		for round := 0; round <= kills; round++ {
			starts = append(starts, time.Now())
			m = runManager("--storage=disk", "--data-dir="+dataDir)
			nw.use(m.api)
			nw.blackout.Store(false)
			want := acknowledged() + perRound
			Eventually(acknowledged).WithTimeout(60*time.Second).Should(BeNumerically(">=", want),
				"round %d: the clients should get %d more 202s from the restarted manager", round, perRound)
			if round < kills {
				// The answers of the manager's last moments are lost: the
				// clients send those requests again to the next manager.
				nw.blackout.Store(true)
				time.Sleep(200 * time.Millisecond)
				Expect(m.cmd.Process.Signal(syscall.SIGKILL)).To(Succeed())
				Eventually(m.exited).WithTimeout(10 * time.Second).Should(Receive())
			}
		}
		writers := kw.finish()

		resends := 0
		for _, w := range writers {
			Expect(w.faults).To(BeEmpty())
			resends += w.resends
		}

		for _, l := range ledgers {
			acks := checkKeyAcks(ctx, writers, l, m.api+keyPath(l))
			ackedAt, resentAcks := acks.ackedAt, 0
			// A resend answered 202 by a manager started after the event
			// was accepted: the killed manager had accepted it, and the
			// resend was answered with its original version.
			for _, o := range acks.resent {
				answeredBy := starts[0]
				for _, start := range starts {
					if start.Before(o.answered) {
						answeredBy = start
					}
				}
				if acks.acceptedAt[o.id].Before(answeredBy) {
					resentAcks++
				}
			}
			Expect(resentAcks).To(BeNumerically(">", 0),
				"%s: the blackouts should leave appends accepted by a killed manager for its successor to answer", l.key)
			GinkgoWriter.Printf("%s: %d appends acknowledged (%d accepted by a killed manager, acknowledged by the next), %d refused with 412\n",
				l.key, len(ackedAt), resentAcks, acks.conflicts)

			// The outbox processor carries on after each restart: the
			// stream reads (the store alone) catch up with the key.
			Eventually(func(g Gomega) {
				inStream := map[string]uint64{}
				url := fmt.Sprintf("%s/v1/namespaces/%s/streams/accounts/events", m.api, ns)
				for after := uint64(0); ; {
					page, err := readStream(ctx, url, after)
					g.Expect(err).NotTo(HaveOccurred())
					if len(page) == 0 {
						break
					}
					for _, ev := range page {
						if ev.Key == l.key {
							inStream[ev.ID] = ev.Version
						}
					}
					after = page[len(page)-1].Sequence
				}
				g.Expect(inStream).To(Equal(ackedAt))
			}).WithTimeout(30 * time.Second).Should(Succeed())
		}
		GinkgoWriter.Printf("%d requests sent again after an unknown outcome, over %d SIGKILLs\n", resends, kills)
	}, SpecTimeout(3*time.Minute))
})
