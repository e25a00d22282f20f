package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clientAddr finds a call's client address. The direct peer is the client,
// unless it is a trusted proxy: then X-Forwarded-For is read from the right,
// past the trusted proxies, and the first address no trusted proxy owns is
// the client. Anything to its left was written by that client and proves
// nothing.
type clientAddr struct {
	trusted []netip.Prefix
}

func (c clientAddr) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// of returns the client's address of r.
func (c clientAddr) of(r *http.Request) string {
	peer, err := parseAddr(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	if !c.isTrusted(peer) {
		return peer.String()
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := parseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// A trusted proxy wrote something that is no address: the
			// last hop that one can name is the client as far as we know.
			break
		}
		client = a
		if !c.isTrusted(a) {
			break
		}
	}
	return client.String()
}

// parseAddr reads "1.2.3.4", "1.2.3.4:5", "::1" or "[::1]:5", IPv4 in
// IPv6 as IPv4.
func parseAddr(s string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), nil
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err
}

// limitKey is the rate-limit key of a client address: the address, or for
// IPv6 its /64, since one host gets a whole /64 to pick addresses from.
func limitKey(client string) string {
	a, err := netip.ParseAddr(client)
	if err != nil || !a.Is6() {
		return client
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// ParseCIDRs reads a comma-separated list of CIDRs, such as
// "10.0.0.0/8, 192.168.0.0/16".
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Limiter is a token bucket per caller key.
type Limiter struct {
	r     rate.Limit
	burst int
	mu    sync.Mutex
	m     map[string]*limiterEntry
}

type limiterEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewLimiter allows r requests per second per key, with burst.
func NewLimiter(r rate.Limit, burst int) *Limiter {
	return &Limiter{r: r, burst: burst, m: map[string]*limiterEntry{}}
}

// Allow takes one token from key's bucket.
func (l *Limiter) Allow(key string) bool {
	now := time.Now()
	l.mu.Lock()
	e, ok := l.m[key]
	if !ok {
		e = &limiterEntry{lim: rate.NewLimiter(l.r, l.burst)}
		l.m[key] = e
	}
	e.seen = now
	l.mu.Unlock()
	return e.lim.AllowN(now, 1)
}

// Forget drops buckets idle for longer than idle, bounding memory.
func (l *Limiter) Forget(idle time.Duration) {
	cut := time.Now().Add(-idle)
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, e := range l.m {
		if e.seen.Before(cut) {
			delete(l.m, k)
		}
	}
}
