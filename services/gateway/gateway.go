// Package gateway is the platform's front door: it routes
// /api/<service>/<path> to <SERVICE>_URL/<path>, verifies bearer tokens
// except on the public routes, limits each client's rate, guards every
// upstream with a circuit breaker and timeouts, and streams responses
// through without buffering them.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Route is a method and a gateway path.
type Route struct{ Method, Path string }

// PublicRoutes are let through without a token. Add a service's sign-up and
// login here.
var PublicRoutes = []Route{
	{http.MethodPost, "/api/user/users"},
	{http.MethodPost, "/api/user/login"},
	{http.MethodPost, "/api/account/accounts"},
	{http.MethodPost, "/api/account/login"},
}

// Error codes.
const (
	CodeUnknownService = "unknown_service"
	CodeUpstreamDown   = "upstream_unavailable"
	CodeUpstreamSlow   = "upstream_timeout"
)

// Options tune the gateway; zero values take the defaults.
type Options struct {
	Timeout         time.Duration // response-header timeout per upstream call; default 15s
	BreakerFailures uint32        // consecutive failures that open a breaker; default 5
	BreakerOpenFor  time.Duration // default 10s
	RPS             float64       // per-client sustained rate; default 100
	Burst           int           // per-client burst; default 200
	Transport       *http.Transport
}

type upstream struct {
	name  string
	base  *url.URL
	proxy *httputil.ReverseProxy
	cb    *gobreaker.TwoStepCircuitBreaker[struct{}]
}

// Gateway is the routing and policy logic, an http.Handler for /api/.
type Gateway struct {
	upstreams map[string]*upstream
	tokens    kit.Verifier
	limiter   *Limiter
	health    *http.Client
}

// New builds a gateway for the given upstreams.
func NewGateway(upstreams map[string]*url.URL, tokens kit.Verifier, m *kit.Metrics, o Options) (*Gateway, error) {
	if tokens == nil || m == nil {
		return nil, errors.New("gateway: needs a token verifier and metrics")
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerOpenFor <= 0 {
		o.BreakerOpenFor = 10 * time.Second
	}
	if o.RPS <= 0 {
		o.RPS = 100
	}
	if o.Burst <= 0 {
		o.Burst = 200
	}
	tr := o.Transport
	if tr == nil {
		tr = kit.NewTransport()
		tr.ResponseHeaderTimeout = o.Timeout
		tr.DialContext = (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	g := &Gateway{upstreams: map[string]*upstream{}, tokens: tokens, limiter: NewLimiter(rate.Limit(o.RPS), o.Burst),
		health: &http.Client{Transport: tr, Timeout: 2 * time.Second}}
	for name, base := range upstreams {
		up := &upstream{name: name, base: base,
			cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](kit.BreakerSettings(name, o.BreakerFailures, o.BreakerOpenFor, m))}
		m.BreakerState.WithLabelValues(name).Set(0)
		up.proxy = &httputil.ReverseProxy{
			Rewrite:        up.rewrite,
			Transport:      tr,
			ModifyResponse: up.modifyResponse,
			ErrorHandler:   up.errorHandler,
			// Flush as bytes arrive: server-sent events and large bodies
			// stream through instead of being buffered.
			FlushInterval: -1,
		}
		g.upstreams[name] = up
	}
	return g, nil
}

type breakerDone struct{}

// reporter records a call's outcome in its breaker exactly once.
type reporter struct {
	once sync.Once
	done func(error)
}

func (r *reporter) report(err error) { r.once.Do(func() { r.done(err) }) }

func (u *upstream) rewrite(pr *httputil.ProxyRequest) {
	rest := pr.In.PathValue("path")
	pr.Out.URL.Scheme, pr.Out.URL.Host = u.base.Scheme, u.base.Host
	pr.Out.URL.Path = strings.TrimSuffix(u.base.Path, "/") + "/" + rest
	pr.Out.URL.RawPath = ""
	pr.Out.Host = u.base.Host
	pr.SetXForwarded()
	pr.Out.Header.Set(kit.HeaderRequestID, kit.RequestID(pr.In.Context()))
}

func (u *upstream) modifyResponse(resp *http.Response) error {
	if r, ok := resp.Request.Context().Value(breakerDone{}).(*reporter); ok {
		// The upstream answered: only a gateway-level failure counts. A 503
		// from order because payment is down must not open order's breaker.
		var err error
		if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout {
			err = fmt.Errorf("%s answered %d", u.name, resp.StatusCode)
		}
		r.report(err)
	}
	return nil
}

func (u *upstream) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if rep, ok := r.Context().Value(breakerDone{}).(*reporter); ok {
		rep.report(err)
	}
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		kit.WriteError(w, r, err)
	case errors.Is(err, context.Canceled):
		// The client left; nobody reads this answer.
		w.WriteHeader(499)
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		kit.WriteError(w, r, kit.Errorf(http.StatusGatewayTimeout, CodeUpstreamSlow, "%s did not answer in time", u.name))
	default:
		kit.WriteError(w, r, kit.Errorf(http.StatusServiceUnavailable, CodeUpstreamDown, "%s is unavailable", u.name))
	}
}

func isPublic(method, path string) bool {
	return slices.Contains(PublicRoutes, Route{method, path})
}

// ServeHTTP handles /api/{service}/{path...}.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("service")
	up, ok := g.upstreams[name]
	if !ok {
		kit.WriteError(w, r, kit.Errorf(http.StatusNotFound, CodeUnknownService, "no service %q behind this gateway", name))
		return
	}
	client := clientIP(r)
	if !isPublic(r.Method, r.URL.Path) {
		c, err := kit.Authenticate(g.tokens, r)
		if err != nil {
			kit.WriteError(w, r, err)
			return
		}
		client = "sub:" + c.Subject
	}
	if !g.limiter.Allow(client) {
		w.Header().Set("Retry-After", "1")
		kit.WriteError(w, r, kit.Errorf(http.StatusTooManyRequests, kit.CodeRateLimited, "rate limit exceeded; slow down"))
		return
	}
	done, err := up.cb.Allow()
	if err != nil {
		kit.WriteError(w, r, kit.Errorf(http.StatusServiceUnavailable, CodeUpstreamDown, "%s is unavailable (circuit open)", name))
		return
	}
	rep := &reporter{done: done}
	defer rep.report(nil)
	up.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), breakerDone{}, rep)))
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// UpstreamHealth is one upstream's line in GET /health.
type UpstreamHealth struct {
	Ready  bool   `json:"ready"`
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Health is the answer of GET /health.
type Health struct {
	Status   string                    `json:"status"`
	Services map[string]UpstreamHealth `json:"services"`
}

// Health asks every upstream's /readyz concurrently.
func (g *Gateway) Health(ctx context.Context) Health {
	h := Health{Status: "ok", Services: map[string]UpstreamHealth{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	names := make([]string, 0, len(g.upstreams))
	for n := range g.upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		up := g.upstreams[n]
		wg.Go(func() {
			uh := UpstreamHealth{}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, up.base.JoinPath("readyz").String(), nil)
			resp, err := g.health.Do(req)
			if err != nil {
				uh.Error = err.Error()
			} else {
				resp.Body.Close()
				uh.Status, uh.Ready = resp.StatusCode, resp.StatusCode == http.StatusOK
			}
			mu.Lock()
			h.Services[n] = uh
			if !uh.Ready {
				h.Status = "degraded"
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return h
}

// Limiter is a token bucket per client key.
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

// NewLimiter allows r requests per second per client, with burst.
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
