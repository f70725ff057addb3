package core_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
)

func TestNewLoggerWritesTextOrJSONAtTheLevel(t *testing.T) {
	var text, js bytes.Buffer
	tl, err := core.NewLogger(&text, core.LogFormatText, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	jl, err := core.NewLogger(&js, core.LogFormatJSON, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*slog.Logger{tl, jl} {
		l.Debug("hidden")
		l.Info("shown", "stream", "s")
	}
	if got := text.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "msg=shown stream=s") {
		t.Errorf("text log = %q, want only the info line in key=value form", got)
	}
	var line map[string]any
	if err := json.Unmarshal(js.Bytes(), &line); err != nil || line["msg"] != "shown" || line["stream"] != "s" {
		t.Errorf("json log = %q (%v), want one JSON line with msg shown and stream s", js.String(), err)
	}
}

func TestNewLoggerRefusesAnUnknownFormat(t *testing.T) {
	if _, err := core.NewLogger(&bytes.Buffer{}, "yaml", slog.LevelInfo); err == nil {
		t.Fatal("NewLogger(yaml) succeeded, want an error naming the formats")
	}
}
