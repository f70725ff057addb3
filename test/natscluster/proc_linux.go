package natscluster

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the server when the test process
// ends, so that a test binary killed at its timeout leaves no server
// holding ports behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
