package main

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func deliver(t *testing.T, typ, key string) (*http.Response, string) {
	t.Helper()
	var logged bytes.Buffer
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", "ev-1")
	req.Header.Set("ce-type", typ)
	req.Header.Set("ce-partitionkey", key)
	rec := httptest.NewRecorder()
	sinkHandler(log.New(&logged, "", 0)).ServeHTTP(rec, req)
	return rec.Result(), logged.String()
}

func TestOrderPaidIsAnsweredWithABinaryModeShipmentRequested(t *testing.T) {
	resp, logged := deliver(t, "OrderPaid", "order-42")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	for header, want := range map[string]string{
		"ce-specversion": "1.0", "ce-type": "ShipmentRequested", "ce-source": "/shipping",
		"ce-partitionkey": "order-42", "Content-Type": "application/json",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != `{"order":"order-42"}` {
		t.Errorf("body %s, want {\"order\":\"order-42\"}", body)
	}
	if want := "received OrderPaid id=ev-1 partitionkey=order-42"; !strings.Contains(logged, want) {
		t.Errorf("log %q does not contain %q", logged, want)
	}
}

func TestOtherEventsGetNoContentAndNoReply(t *testing.T) {
	resp, logged := deliver(t, "OrderPlaced", "order-42")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d, want 204", resp.StatusCode)
	}
	if resp.Header.Get("ce-specversion") != "" {
		t.Error("a 204 carries ce-specversion: it would read as a reply")
	}
	if !strings.Contains(logged, "received OrderPlaced id=ev-1") {
		t.Errorf("log %q does not name the event", logged)
	}
}
