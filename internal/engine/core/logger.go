package core

import (
	"fmt"
	"io"
	"log/slog"
)

// Log formats NewLogger accepts (the manager's --log-format).
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// NewLogger returns a logger writing lines of format ("text" or "json") at
// level and above to w. Pipelines log their per-event lines at their own
// level (debug unless set), so a logger at info keeps them off.
func NewLogger(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case LogFormatText, "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case LogFormatJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want %q or %q", format, LogFormatText, LogFormatJSON)
}
