//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
)

// pprofEnv is the loopback address a manager built with -tags pprof serves
// net/http/pprof on, for profiling it as a user runs it (docs/performance.md).
// Release builds leave this file out.
const pprofEnv = "EVENTSOURCING_PPROF_ADDR"

func init() {
	addr := os.Getenv(pprofEnv)
	if addr == "" {
		return
	}
	if !loopback(addr) {
		setupLog.Info("ignoring "+pprofEnv+": not a loopback address", "address", addr)
		return
	}
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil { //nolint:gosec // loopback only, profiling builds
			setupLog.Error(err, "pprof endpoint stopped")
		}
	}()
}
