// Command pause is the sandbox ("pause") container of the local cluster's
// pods: it holds the pod's namespaces and waits for a signal. containerd's
// sandbox_image points at the image built from it, so no registry is needed.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	// Reap zombies: pause is PID 1 of the pod's PID namespace when shared.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGCHLD)
	<-c
}
