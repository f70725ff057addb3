package httpapi

import (
	"maps"
	"slices"
)

// Routes gives the patterns h serves, each with the methods it serves there
// (sorted), as NewHandler registered them.
func Routes(h *Handler) map[string][]string {
	out := map[string][]string{}
	for _, rt := range h.routes() {
		out[rt.pattern] = slices.Sorted(maps.Keys(rt.methods))
	}
	return out
}
