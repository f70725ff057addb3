package serde

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// checkJSONCompatible fails t unless v holds only the types Decoder promises
// and encodes as JSON.
func checkJSONCompatible(t *testing.T, v any) {
	t.Helper()
	if err := jsonCompatible(v); err != nil {
		t.Fatalf("decoded value %#v is not JSON-compatible: %v", v, err)
	}
	if _, err := json.Marshal(v); err != nil {
		t.Fatalf("decoded value %#v does not marshal as JSON: %v", v, err)
	}
}

func jsonCompatible(v any) error {
	switch t := v.(type) {
	case nil, string, float64, int64, bool:
		return nil
	case map[string]any:
		for _, e := range t {
			if err := jsonCompatible(e); err != nil {
				return err
			}
		}
		return nil
	case []any:
		for _, e := range t {
			if err := jsonCompatible(e); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("unexpected type %T", v)
	}
}

// wantErr fails t unless err is non-nil and its message holds every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("got error %q, want it to contain %q", err, p)
		}
	}
}
