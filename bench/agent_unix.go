//go:build unix

package bench

import "syscall"

// dieWithParent puts a child in a process group of its own, so that a
// terminal's Ctrl-C interrupts the bench, which then stops the agent,
// instead of stopping the agent under the bench's feet; on Linux it also
// makes the child die with this process (the parent-death signal), so that
// a bench killed without its cleanups leaves no agent behind.
func dieWithParent() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(attr)
	return attr
}
