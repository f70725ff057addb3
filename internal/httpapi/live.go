package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

// errTooSlow ends a live read whose reader fell a whole buffer behind.
var errTooSlow = errors.New("reader too slow")

// shutdownComment ends the live reads of a server that shuts down.
const shutdownComment = "the server is shutting down; reconnect with Last-Event-ID to resume"

// heartbeat is the comment line that keeps an idle live read open.
var heartbeat = []byte(": keep-alive\n\n")

// frame is one Server-Sent Event, encoded, and its id.
type frame struct {
	id   uint64
	data []byte
}

// emitFunc hands one event of a live read to its writer. stored says the
// event was stored before the reader connected: the reader's own pace sets
// how fast those are read, so they wait for room in the buffer; a newer
// event that finds the buffer full disconnects the reader (errTooSlow).
type emitFunc func(m engine.Message, id uint64, stored bool) error

// wantsEventStream reports whether the request accepts text/event-stream.
func wantsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mediaType, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mediaType), "text/event-stream") {
				return true
			}
		}
	}
	return false
}

// resumeAfter gives the position a live read starts after: the
// Last-Event-ID header when there is one (an EventSource reconnects with
// its first URL and this header, so the header wins), else ?after=.
func resumeAfter(r *http.Request, after uint64) (uint64, *Problem) {
	s := r.Header.Get("Last-Event-ID")
	if s == "" {
		return after, nil
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, newProblem(http.StatusBadRequest, kindInvalidRequest,
			fmt.Sprintf("Last-Event-ID: want the id of an event this API sent (a whole number), got %q", s))
	}
	return id, nil
}

// liveStream serves a live read of a stream: its stored events after the
// start, then each new one; ids are sequences.
func (h *Handler) liveStream(w http.ResponseWriter, r *http.Request, ns, stream string, rp readParams) *Problem {
	after, p := resumeAfter(r, rp.after)
	if p != nil {
		return p
	}
	name := engineName(ns, stream)
	head, err := h.cfg.Engine.LastSequence(r.Context(), name)
	var sub *core.Subscription
	if err == nil {
		sub, err = h.cfg.Engine.Subscribe(r.Context(), name, after)
	}
	if p := h.readFailed(err, ns, stream); p != nil {
		return p
	}
	h.serveLive(w, r, func(ctx context.Context, emit emitFunc) error {
		defer func() { _ = sub.Close() }()
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return err
			}
			if rp.name != "" && m.Name != rp.name {
				continue
			}
			if err := emit(m, m.Sequence, m.Sequence <= head); err != nil {
				return err
			}
		}
	})
	return nil
}

// liveKey serves a live read of one key: its events after the start, as
// ReadKey gives them (read-your-writes), then each new one; ids are
// versions. New events come from a subscription to the stream from its end
// as it was before the first ReadKey: an event of the key that ReadKey did
// not return was accepted after it, so it is stored after that end, and
// the version check drops those ReadKey returned before they were stored.
func (h *Handler) liveKey(w http.ResponseWriter, r *http.Request, ns, stream, key string, rp readParams) *Problem {
	after, p := resumeAfter(r, rp.after)
	if p != nil {
		return p
	}
	name := engineName(ns, stream)
	head, err := h.cfg.Engine.LastSequence(r.Context(), name)
	var first []engine.Message
	if err == nil {
		first, _, err = h.cfg.Engine.ReadKey(r.Context(), name, key, after, maxReadLimit)
	}
	if p := h.readFailed(err, ns, stream); p != nil {
		return p
	}
	h.serveLive(w, r, func(ctx context.Context, emit emitFunc) error {
		last, msgs := after, first
		for len(msgs) > 0 {
			for _, m := range msgs {
				if err := emit(m, m.Version, true); err != nil {
					return err
				}
				last = m.Version
			}
			var err error
			if msgs, _, err = h.cfg.Engine.ReadKey(ctx, name, key, last, maxReadLimit); err != nil {
				return err
			}
		}
		sub, err := h.cfg.Engine.Subscribe(ctx, name, head)
		if err != nil {
			return err
		}
		defer func() { _ = sub.Close() }()
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return err
			}
			if m.Key != key || m.Version <= last {
				continue
			}
			if err := emit(m, m.Version, false); err != nil {
				return err
			}
			last = m.Version
		}
	})
	return nil
}

// readFailed turns a read's error into the problem to answer.
func (h *Handler) readFailed(err error, ns, stream string) *Problem {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, core.ErrStreamNotFound):
		return streamNotFound(ns, stream)
	default:
		h.cfg.Log.Error(err, "live read failed", "namespace", ns, "stream", stream)
		return newProblem(http.StatusInternalServerError, kindInternal, "the stream could not be read")
	}
}

// serveLive answers with Server-Sent Events. produce runs on a goroutine of
// its own and hands events to this one through a buffer of
// Config.LiveBuffer events, so that reading the store and writing to the
// reader each go at their own pace; the store's subscriptions pull, so
// neither holds an append back. The answer ends when the reader goes, the
// server shuts down, the reader falls behind (errTooSlow) or produce fails;
// the last three end with a comment line saying why.
func (h *Handler) serveLive(w http.ResponseWriter, r *http.Request, produce func(ctx context.Context, emit emitFunc) error) {
	rc := http.NewResponseController(w)
	// A live read outlasts the server's timeouts, which run from the
	// request's start (an expired read deadline would cancel it); each write
	// gets a deadline of its own instead.
	_ = rc.SetReadDeadline(time.Time{})
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.LiveWriteWait))
		_, err := w.Write(b)
		return err == nil
	}
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.LiveWriteWait))
		return rc.Flush() == nil
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx would buffer the stream
	w.WriteHeader(http.StatusOK)
	if !flush() || r.Method == http.MethodHead {
		return
	}

	ctx, cancel := untilShutdown(r)
	frames := make(chan frame, h.cfg.LiveBuffer)
	var produced error // set before frames is closed
	go func() {
		defer close(frames)
		produced = produce(ctx, func(m engine.Message, id uint64, stored bool) error {
			f := frame{id: id, data: encodeEvent(id, m)}
			if stored {
				select {
				case frames <- f:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			select {
			case frames <- f:
				return nil
			default:
				return errTooSlow
			}
		})
	}()
	defer func() {
		cancel()
		for range frames { //nolint:revive // drained so that produce returns
		}
	}()

	ticker := time.NewTicker(h.cfg.LiveHeartbeat)
	defer ticker.Stop()
	var lastID uint64
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				if why := h.endReason(r, produced, lastID); why != "" {
					_ = write(comment(why)) && flush()
				}
				return
			}
			// Write what the buffer holds, then flush once.
			for ok {
				if !write(f.data) {
					return
				}
				lastID = f.id
				select {
				case f, ok = <-frames:
				default:
					ok = false
				}
			}
			if !flush() {
				return
			}
		case <-ticker.C:
			if !write(heartbeat) || !flush() {
				return
			}
		case <-stopping(r):
			_ = write(comment(shutdownComment)) && flush()
			return
		case <-r.Context().Done():
			return
		}
	}
}

// endReason is the comment that ends a live read whose events ran out
// because of err; "" when the reader has gone.
func (h *Handler) endReason(r *http.Request, err error, lastID uint64) string {
	switch {
	case r.Context().Err() != nil:
		return ""
	case errors.Is(err, errTooSlow):
		return fmt.Sprintf("disconnected: the reader fell %d events behind; reconnect with Last-Event-ID: %d to resume",
			h.cfg.LiveBuffer, lastID)
	case errors.Is(err, context.Canceled):
		return shutdownComment
	default:
		h.cfg.Log.Error(err, "live read failed", "path", r.URL.Path)
		return "disconnected: the stream could not be read; reconnect with Last-Event-ID to resume"
	}
}

// comment is an SSE comment line (and a blank line, so that line-based
// readers see it as a block of its own).
func comment(s string) []byte { return []byte(": " + s + "\n\n") }

// encodeEvent is one Server-Sent Event: the id, the event name and the
// event view as one line of JSON (JSON escapes line breaks in strings).
func encodeEvent(id uint64, m engine.Message) []byte {
	data, err := json.Marshal(view(m))
	if err != nil {
		// Only eventView gets here, and it always encodes.
		panic(fmt.Sprintf("httpapi: encode event: %v", err))
	}
	var b bytes.Buffer
	b.Grow(len(data) + len(m.Name) + 40)
	b.WriteString("id: ")
	b.WriteString(strconv.FormatUint(id, 10))
	b.WriteByte('\n')
	if m.Name != "" {
		// A line break would end the field; event names are not checked at ingest.
		b.WriteString("event: ")
		b.WriteString(strings.NewReplacer("\r", " ", "\n", " ").Replace(m.Name))
		b.WriteByte('\n')
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	return b.Bytes()
}
