//go:build linux

package storebench

import (
	"os"
	"syscall"
)

// fdatasync is what bbolt and pebble call on Linux to make a write durable.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
