package httpapi

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/enginebench"
)

func TestShutdownEndsLiveReadsAndLongPollsPromptly(t *testing.T) {
	e, err := core.New(core.Config{PollingInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if err := e.ApplyStream(core.StreamSpec{Name: "team-a/items", DefaultEventName: "ItemCreated"}); err != nil {
		t.Fatal(err)
	}
	enginebench.RunEngine(t, e)
	h, err := NewHandler(Config{Engine: e, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	url, stop := startServer(t, h)
	path := url + "/v1/namespaces/team-a/streams/items/events"

	live, err := http.NewRequestWithContext(t.Context(), http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	live.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(live)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("open a live read: %v %v", err, resp)
	}
	defer func() { _ = resp.Body.Close() }()
	body := make(chan string, 1)
	go func() { b, _ := io.ReadAll(resp.Body); body <- string(b) }()

	polled := make(chan int, 1)
	go func() {
		r, err := http.Get(path + "?wait=60s")
		if err != nil {
			polled <- 0
			return
		}
		_ = r.Body.Close()
		polled <- r.StatusCode
	}()
	// Both requests are in the handler once the long poll subscribed;
	// nothing observable says so, so give it a moment.
	time.Sleep(300 * time.Millisecond)

	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Start returned %v, want nil", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %s with a live read and a long poll open, want them ended at once", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case b := <-body:
		if !strings.HasSuffix(b, ": "+shutdownComment+"\n\n") {
			t.Errorf("live read body %q, want it to end with the shutdown comment", b)
		}
	case <-ctx.Done():
		t.Fatal("the live read's body did not end")
	}
	if got := <-polled; got != http.StatusOK {
		t.Errorf("long poll: status %d, want 200 (an empty page)", got)
	}
}
