package readmodel

import (
	"bytes"
	"encoding/json"
)

// AppendJSON appends v to dst encoded as json.Marshal encodes it, so that a
// durable store's documents match the memory store's (which escapes HTML
// characters and compacts raw JSON text). Raw JSON text without HTML
// characters is compacted straight into dst: it is what most read-model
// values are (a projection keeps an event's JSON payload), and
// json.Marshal would copy it twice.
func AppendJSON(dst []byte, v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok && !needsHTMLEscape(raw) {
		buf := bytes.NewBuffer(dst)
		if json.Compact(buf, raw) == nil {
			return buf.Bytes(), nil
		}
		// Not JSON: json.Marshal says so, in its words.
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// needsHTMLEscape reports whether json.Marshal would escape something in
// raw: <, > or &, or U+2028 or U+2029 (which start with the byte 0xE2).
func needsHTMLEscape(raw []byte) bool {
	return bytes.IndexByte(raw, '<') >= 0 || bytes.IndexByte(raw, '>') >= 0 ||
		bytes.IndexByte(raw, '&') >= 0 || bytes.IndexByte(raw, 0xE2) >= 0
}
