package bench

import "syscall"

// setParentDeathSignal has the kernel kill the child when this process
// exits (prctl PR_SET_PDEATHSIG).
func setParentDeathSignal(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
