// Command reactor-sink is a tiny HTTP sink for a Reactor, for trying
// reactors locally: it logs every CloudEvent it receives and answers each
// OrderPaid with a ShipmentRequested event in CloudEvents binary mode, which
// the Reactor appends to its reply stream. Other events get 204 (no reply).
//
//	go run ./hack/reactor-sink --addr 127.0.0.1:9090
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "the address to listen on")
	flag.Parse()
	logger := log.Default()
	logger.Printf("reactor-sink listening on http://%s", *addr)
	srv := &http.Server{Addr: *addr, Handler: sinkHandler(logger), ReadHeaderTimeout: 10 * time.Second}
	logger.Fatal(srv.ListenAndServe())
}

// sinkHandler is the sink: OrderPaid gets a ShipmentRequested reply for the
// same order (its partition key), anything else 204.
func sinkHandler(logger *log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		typ, id, key := r.Header.Get("ce-type"), r.Header.Get("ce-id"), r.Header.Get("ce-partitionkey")
		logger.Printf("received %s id=%s partitionkey=%s", typ, id, key)
		if typ != "OrderPaid" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		body, err := json.Marshal(map[string]string{"order": key})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// Binary mode: the event's attributes are ce-* headers, its data the
		// body. No ce-id: the Reactor derives one from the cause, so a
		// redelivered OrderPaid is not answered twice in the reply stream.
		h := w.Header()
		h.Set("ce-specversion", "1.0")
		h.Set("ce-type", "ShipmentRequested")
		h.Set("ce-source", "/shipping")
		if key != "" {
			h.Set("ce-partitionkey", key)
		}
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}
