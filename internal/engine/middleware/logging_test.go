package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine"
)

// logRecord is one captured log line with its attributes flattened.
type logRecord struct {
	level slog.Level
	text  string
	attrs map[string]slog.Value
}

// logRecorder is a slog.Handler that keeps every record at or above minLevel.
type logRecorder struct {
	minLevel slog.Level
	mu       *sync.Mutex
	records  *[]logRecord
	attrs    []slog.Attr
}

func newLogRecorder(minLevel slog.Level) *logRecorder {
	return &logRecorder{minLevel: minLevel, mu: new(sync.Mutex), records: new([]logRecord)}
}

func (h *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= h.minLevel }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, text: r.Message, attrs: map[string]slog.Value{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, rec)
	return nil
}

func (h *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

func (h *logRecorder) all() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logRecord(nil), *h.records...)
}

func TestLoggingWritesEventLineAtLevelWhenEnabled(t *testing.T) {
	rec := newLogRecorder(slog.LevelDebug)
	msg := testMessage()
	h := Logging(slog.New(rec), slog.LevelDebug, "items-projection")(newScriptedHandler())

	if _, err := h.Handle(context.Background(), msg); err != nil {
		t.Fatalf("Handle: got error %v, want nil", err)
	}
	records := rec.all()
	if len(records) != 1 {
		t.Fatalf("got %d log lines, want 1: %+v", len(records), records)
	}
	r := records[0]
	if r.level != slog.LevelDebug {
		t.Errorf("level: got %v, want %v", r.level, slog.LevelDebug)
	}
	want := map[string]string{
		"handler":  "items-projection",
		"stream":   msg.Stream,
		"sequence": "7",
		"id":       msg.ID,
		"name":     msg.Name,
	}
	for k, v := range want {
		if got := r.attrs[k].String(); got != v {
			t.Errorf("attr %s: got %q, want %q", k, got, v)
		}
	}
	if d, ok := r.attrs["duration"]; !ok || d.Kind() != slog.KindDuration {
		t.Errorf("attr duration: got %v, want a duration", d)
	}
}

func TestLoggingDisabledLevelWritesNothingAndDoesNotAllocate(t *testing.T) {
	rec := newLogRecorder(slog.LevelInfo)
	h := Logging(slog.New(rec), slog.LevelDebug, "items-projection")(noopHandler)
	msg := testMessage()
	ctx := context.Background()

	allocs := testing.AllocsPerRun(100, func() {
		if _, err := h.Handle(ctx, msg); err != nil {
			t.Fatalf("Handle: got error %v, want nil", err)
		}
	})
	if allocs != 0 {
		t.Errorf("allocations per message: got %v, want 0", allocs)
	}
	if got := rec.all(); len(got) != 0 {
		t.Errorf("got %d log lines, want 0: %+v", len(got), got)
	}
}

func TestLoggingFailureIsLoggedAtErrorWhateverTheLevel(t *testing.T) {
	for _, minLevel := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		t.Run(minLevel.String(), func(t *testing.T) {
			rec := newLogRecorder(minLevel)
			failure := engine.WithAttempts(errBoom, 3)
			h := Logging(slog.New(rec), slog.LevelDebug, "items-projection")(newScriptedHandler(failure))

			if _, err := h.Handle(context.Background(), testMessage()); err != failure {
				t.Fatalf("Handle: got error %v, want %v unchanged", err, failure)
			}
			records := rec.all()
			if len(records) != 1 {
				t.Fatalf("got %d log lines, want 1: %+v", len(records), records)
			}
			r := records[0]
			if r.level != slog.LevelError {
				t.Errorf("level: got %v, want %v", r.level, slog.LevelError)
			}
			if got := r.attrs["error"].Any(); got != failure {
				t.Errorf("attr error: got %v, want %v", got, failure)
			}
			if got := r.attrs["attempts"].Int64(); got != 3 {
				t.Errorf("attr attempts: got %d, want 3", got)
			}
			if got := r.attrs["handler"].String(); got != "items-projection" {
				t.Errorf("attr handler: got %q, want %q", got, "items-projection")
			}
		})
	}
}

func TestLoggingSettledOutcomesAreNotErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantText string
	}{
		{"skip", engine.ErrSkip, "event skipped"},
		{"dead-lettered", fmt.Errorf("sent to dead: %w", engine.ErrDeadLettered), "event dead-lettered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newLogRecorder(slog.LevelDebug)
			h := Logging(slog.New(rec), slog.LevelInfo, "p")(newScriptedHandler(tt.err))

			if _, err := h.Handle(context.Background(), testMessage()); err != tt.err {
				t.Fatalf("Handle: got error %v, want %v unchanged", err, tt.err)
			}
			records := rec.all()
			if len(records) != 1 {
				t.Fatalf("got %d log lines, want 1: %+v", len(records), records)
			}
			if r := records[0]; r.level != slog.LevelInfo || r.text != tt.wantText {
				t.Errorf("got %v %q, want %v %q", r.level, r.text, slog.LevelInfo, tt.wantText)
			}
			if got := records[0].attrs["reason"].String(); got != tt.err.Error() {
				t.Errorf("attr reason: got %q, want %q", got, tt.err.Error())
			}
		})
	}
}

func TestLoggingNilLoggerUsesDefault(t *testing.T) {
	rec := newLogRecorder(slog.LevelDebug)
	prev := slog.Default()
	slog.SetDefault(slog.New(rec))
	t.Cleanup(func() { slog.SetDefault(prev) })

	h := Logging(nil, slog.LevelInfo, "p")(noopHandler)
	if _, err := h.Handle(context.Background(), testMessage()); err != nil {
		t.Fatalf("Handle: got error %v, want nil", err)
	}
	if got := len(rec.all()); got != 1 {
		t.Errorf("lines on the default logger: got %d, want 1", got)
	}
}

// The duration attribute measures next, not a constant.
func TestLoggingDurationCoversNext(t *testing.T) {
	rec := newLogRecorder(slog.LevelDebug)
	slow := engine.HandlerFunc(func(context.Context, engine.Message) ([]engine.Message, error) {
		time.Sleep(2 * time.Millisecond) // simulated work, not synchronisation
		return nil, nil
	})
	h := Logging(slog.New(rec), slog.LevelDebug, "p")(slow)
	if _, err := h.Handle(context.Background(), testMessage()); err != nil {
		t.Fatalf("Handle: got error %v, want nil", err)
	}
	if got := rec.all()[0].attrs["duration"].Duration(); got < 2*time.Millisecond {
		t.Errorf("duration: got %v, want at least 2ms", got)
	}
}
