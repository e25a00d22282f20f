package chaos

import "syscall"

// procAttr makes the kernel kill a pod's process if the harness dies
// before it cleans up.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
