package e2e

import "syscall"

// procAttr makes the kernel kill a service process if the test binary dies
// before its cleanup runs.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
