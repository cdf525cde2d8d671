//go:build !unix

package bench

import "syscall"

// dieWithParent sets nothing where there are no process groups: the
// harness's cleanup kills the agent by its PID.
func dieWithParent() *syscall.SysProcAttr { return nil }
