//go:build unix && !linux

package bench

import "syscall"

// setParentDeathSignal does nothing where the OS has no parent-death
// signal: the harness's cleanup kills the agent by its PID.
func setParentDeathSignal(*syscall.SysProcAttr) {}
