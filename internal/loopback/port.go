// Package loopback hands tests loopback ports for processes they start
// themselves, which must be told a port before they bind it.
package loopback

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

// Ports are drawn below Linux's default ephemeral range (32768–60999): a
// port asked of the kernel with ":0" and closed again can be handed to any
// outgoing connection before the child binds it, which made parallel test
// packages collide. Nothing picks from this range but this package.
const (
	low  = 20000
	high = 32768
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// FreePort returns a 127.0.0.1 port that was bindable a moment ago and that
// this process has not handed out before.
func FreePort() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		port := low + rand.IntN(high-low)
		if handed[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		handed[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("loopback: no free port in %d-%d after 200 tries", low, high-1)
}
