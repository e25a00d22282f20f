package chaos

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxy is the harness's stand-in for a Service's kube-proxy: one loopback
// address in front of the pods a Service selects. It works at L4, so the
// mutual TLS between services passes through it untouched. A connection
// goes to the next ready pod in turn; when that pod refuses it (killed,
// restarting), the next one is tried, so callers of a killed replica fail
// over. A paused pod still accepts connections in its kernel, as it would
// behind a real Service, until its readiness probe fails.
type proxy struct {
	name     string
	ln       net.Listener
	backends []*backend
	next     atomic.Uint64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// backend is one pod's port behind a proxy.
type backend struct {
	pod  *pod
	addr string
	// conns counts the connections the proxy sent here: how the callers'
	// load spread over the replicas (gRPC keeps one connection per
	// caller and target until it breaks, as behind a ClusterIP).
	conns atomic.Int64
}

func newProxy(name string, port int, backends []*backend) (*proxy, error) {
	ln, err := listenLoopback(port)
	if err != nil {
		return nil, err
	}
	p := &proxy{name: name, ln: ln, backends: backends, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.forward(c)
		}()
	}
}

// forward dials the ready pods in turn, starting at the next one, and
// splices the two connections until either side ends.
func (p *proxy) forward(client net.Conn) {
	defer client.Close()
	n := len(p.backends)
	start := int(p.next.Add(1) % uint64(n))
	var up net.Conn
	for i := range n {
		b := p.backends[(start+i)%n]
		if !b.pod.Ready() {
			continue
		}
		c, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err == nil {
			up = c
			b.conns.Add(1)
			break
		}
	}
	if up == nil {
		return // no ready endpoint: the caller sees the connection closed
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close so a response still in flight reaches the caller.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, client)
	go pipe(client, up)
	<-done
	// One direction ended. A killed pod resets its side, which ends the
	// other direction too; a caller that hung up likewise. Give the other
	// direction a moment to flush, then cut both.
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// Close stops accepting and cuts every connection through the proxy.
func (p *proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// Spread is how many connections went to each pod so far.
func (p *proxy) Spread() map[string]int64 {
	out := map[string]int64{}
	for _, b := range p.backends {
		out[b.pod.name] = b.conns.Load()
	}
	return out
}

// Addr is the proxy's host:port.
func (p *proxy) Addr() string { return p.ln.Addr().String() }

// listenLoopback listens on 127.0.0.1:port, retrying briefly while a
// previous owner of the port lets go of it.
func listenLoopback(port int) (net.Listener, error) {
	addr := net.JoinHostPort("127.0.0.1", itoa(port))
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}
