//go:build !linux

package natscluster

import "os/exec"

// dieWithParent does nothing where the kernel has no parent-death signal:
// a test binary killed at its timeout may leave servers behind there.
func dieWithParent(*exec.Cmd) {}
