// Package gateway is the platform's front door. It routes exactly the
// public API the catalog declares (catalog.Routes), each route to its
// service, and answers anything else 404 unknown_route. On every route it
// enforces the route's audience (public: no token; customer: a valid token;
// admin: a token with the admin role, else 403), limits each caller's rate
// (by user when a valid token comes with the call, by client address
// otherwise), guards every upstream with a circuit breaker and timeouts,
// and streams responses through without buffering them.
//
// Its own port is plain HTTP: TLS for the outside world ends at the
// ingress or load balancer in front of it. Behind it, every service's API
// port speaks mutual TLS and admits the gateway's certificate only; the
// gateway in turn checks that each upstream proves that upstream's own
// identity.
package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Error codes.
const (
	CodeUnknownRoute = "unknown_route"
	CodeUpstreamDown = "upstream_unavailable"
	CodeUpstreamSlow = "upstream_timeout"
)

// Upstream is where a service is reached: its API (https: the gateway
// proves its identity and checks the service's), and its ops port (plain),
// where the gateway asks for its readiness.
type Upstream struct {
	API, Ops *url.URL
}

// Options tune the gateway; zero values take the defaults.
type Options struct {
	Timeout         time.Duration // response-header timeout per upstream call; default 15s
	BreakerFailures uint32        // consecutive failures that open a breaker; default 5
	BreakerOpenFor  time.Duration // default 10s
	RPS             float64       // per-caller sustained rate; default 100
	Burst           int           // per-caller burst; default 200
	// TrustedProxies are the proxies whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Identity is the gateway's own: the certificate it presents to every
	// upstream's API port, the only one those admit.
	Identity *kit.Identity
	// Transport is the base of every upstream's transport; each upstream
	// gets a copy with mutual TLS to its own identity.
	Transport *http.Transport
	// Console says where the console reads what the gateway does not hold.
	Console ConsoleOptions
	// Tracing traces each call to an upstream and passes the trace on;
	// nil traces nothing.
	Tracing *kit.Tracing
}

type upstream struct {
	name  string
	base  *url.URL
	ops   *url.URL
	proxy *httputil.ReverseProxy
	cb    *gobreaker.TwoStepCircuitBreaker[struct{}]
}

// Gateway is the routing and policy logic. Register puts its routes on a
// mux.
type Gateway struct {
	upstreams map[string]*upstream
	tokens    kit.Verifier
	limiter   *Limiter
	clients   clientAddr
	health    *http.Client
	// routes are the routes it serves: the catalog's, less those of
	// services it has no upstream for.
	routes  []catalog.Route
	openAPI []byte
	// own are the handlers of the gateway's own routes, by pattern.
	own     map[string]http.HandlerFunc
	console *console
	// resolve finds the addresses behind an ops host: every pod of a
	// headless ops Service.
	resolve func(ctx context.Context, host string) ([]string, error)
}

// NewGateway builds a gateway for the given upstreams, by service name. A
// service without one (disabled on this platform) has no routes here.
func NewGateway(upstreams map[string]Upstream, tokens kit.Verifier, m *kit.Metrics, o Options) (*Gateway, error) {
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
	if o.Identity == nil {
		return nil, errors.New("gateway: needs its identity: services admit the gateway's certificate only")
	}
	tr := o.Transport
	if tr == nil {
		tr = newTransport(o.Timeout)
	}
	g := &Gateway{upstreams: map[string]*upstream{}, tokens: tokens, limiter: NewLimiter(rate.Limit(o.RPS), o.Burst),
		clients: clientAddr{trusted: o.TrustedProxies}, resolve: net.DefaultResolver.LookupHost,
		// The ops ports are plain HTTP.
		health: &http.Client{Transport: tr.Clone(), Timeout: 2 * time.Second}}
	gw, _ := catalog.Lookup(catalog.Gateway)
	for name, u := range upstreams {
		if !slices.Contains(gw.Upstreams, name) {
			return nil, fmt.Errorf("gateway: %q is not an upstream of the gateway in the catalog", name)
		}
		if u.API == nil || u.Ops == nil {
			return nil, fmt.Errorf("gateway: %s needs both its API and its ops URL", name)
		}
		if u.API.Scheme != "https" {
			return nil, fmt.Errorf("gateway: %s's API is %s: services serve their API over mutual TLS (https)", name, u.API)
		}
		up := &upstream{name: name, base: u.API, ops: u.Ops,
			cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](kit.BreakerSettings(name, o.BreakerFailures, o.BreakerOpenFor, m))}
		m.BreakerState.WithLabelValues(name).Set(0)
		up.proxy = &httputil.ReverseProxy{
			Rewrite:        up.rewrite,
			Transport:      o.Tracing.HTTPTransport(upstreamTransport(tr, o.Identity, name), name),
			ModifyResponse: up.modifyResponse,
			ErrorHandler:   up.errorHandler,
			// Bodies stream through a pooled buffer, never whole. A
			// server-sent event stream, or any answer of unknown length,
			// is flushed as its bytes arrive (ReverseProxy does so by
			// itself); an answer of known length leaves in as few writes
			// as the server's buffer allows. Flushing every answer at
			// every write (FlushInterval -1) cost a timer goroutine and
			// one more write(2) per request.
			BufferPool: copyBuffers,
		}
		g.upstreams[name] = up
	}
	g.own = map[string]http.HandlerFunc{
		"GET /health":           g.serveHealth,
		"GET /api/openapi.json": g.serveOpenAPI,
	}
	g.console = newConsole(g, m, o.Console)
	maps.Copy(g.own, g.console.handlers())
	for _, rt := range catalog.Routes() {
		if rt.Own() && g.own[rt.Pattern()] == nil {
			return nil, fmt.Errorf("gateway: the catalog declares %s, which the gateway does not serve", rt.Pattern())
		}
		if _, ok := g.upstreams[rt.Service]; ok || rt.Own() {
			g.routes = append(g.routes, rt)
		}
	}
	doc, err := json.Marshal(OpenAPI(g.routes))
	if err != nil {
		return nil, err
	}
	g.openAPI = doc
	return g, nil
}

// copyBuffers are the proxy's copy buffers: without a pool, ReverseProxy
// allocates 32 KiB per request.
var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }

// newTransport is the pooled transport the upstreams' are copies of: many
// idle connections per host, so a busy gateway never re-dials (and never
// repeats a TLS handshake), short dials, and o.Timeout for the answer's
// headers. It speaks HTTP/1.1 with keep-alive, what the services' API
// ports serve (they offer no h2), without looking for an HTTP/2
// connection first on every call, and passes bodies through as the
// upstream encoded them (no gzip of its own asking, no decoding).
func newTransport(timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	t.DisableCompression = true
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = timeout
	t.DialContext = (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return t
}

// upstreamTransport is base with mutual TLS to one upstream: the gateway's
// certificate, and the server must prove the upstream's own SPIFFE ID
// (read at each handshake, so a renewed identity is followed), whatever
// address it answers on.
func upstreamTransport(base *http.Transport, ident *kit.Identity, name string) *http.Transport {
	t := base.Clone()
	t.TLSClientConfig = kit.ClientTLSConfig(ident, func(peer kit.SPIFFEID) error {
		return kit.AuthorizeID(ident.ID().Sibling(name))(peer)
	})
	// A new connection (after an idle timeout, or past the pool) resumes
	// a session instead of a full handshake; the upstream's identity is
	// checked again all the same (VerifyConnection runs on resumption).
	t.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(256)
	return t
}

// Register puts one handler per route of the table on mux, each enforcing
// its route's audience, and answers every other request, known paths with
// an undeclared method included, 404 unknown_route. A route of a service
// this gateway has no upstream for is unknown too: on a platform without
// that workload the route does not exist, and a 503 would invite retries
// that can never succeed.
func (g *Gateway) Register(mux *http.ServeMux) {
	for _, rt := range g.routes {
		var h http.Handler = g.own[rt.Pattern()]
		if !rt.Own() {
			h = g.upstreams[rt.Service]
		}
		mux.Handle(rt.Pattern(), g.guard(rt, h))
	}
	mux.HandleFunc("/", unknownRoute)
}

func unknownRoute(w http.ResponseWriter, r *http.Request) {
	kit.WriteError(w, r, kit.Errorf(http.StatusNotFound, CodeUnknownRoute, "no route %s %s", r.Method, r.URL.Path))
}

// guard lets a call through to h when its route's audience admits the
// caller and the caller's rate allows it.
func (g *Gateway) guard(rt catalog.Route, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A GET pattern also matches HEAD, which the table does not declare.
		if r.Method != rt.Method {
			unknownRoute(w, r)
			return
		}
		claims, authErr := g.authenticate(r)
		c := &routed{client: g.clients.of(r)}
		r = r.WithContext(context.WithValue(r.Context(), callKey{}, c))
		key := "addr:" + limitKey(c.client)
		if claims != nil {
			key = "user:" + claims.Subject
		}
		if !g.limiter.Allow(key) {
			w.Header().Set("Retry-After", "1")
			kit.WriteError(w, r, kit.Errorf(http.StatusTooManyRequests, kit.CodeRateLimited, "rate limit exceeded; slow down"))
			return
		}
		if err := admit(rt.Audience, claims, authErr); err != nil {
			kit.WriteError(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// errNoToken is the refusal of a call without a token, made once: most
// calls to public routes carry none, and only need it when the route is
// not public.
var errNoToken = kit.Unauthenticated("missing bearer token")

// authenticate verifies the call's bearer token, if it carries one.
func (g *Gateway) authenticate(r *http.Request) (*kit.Claims, error) {
	if _, ok := kit.BearerToken(r); !ok {
		return nil, errNoToken
	}
	return kit.Authenticate(g.tokens, r)
}

// admit decides whether an audience admits a caller: a public route admits
// anyone, even with a bad token (the token is then ignored); the others need
// a valid one, and an admin route the admin role.
func admit(a catalog.Audience, c *kit.Claims, authErr error) error {
	switch {
	case a == catalog.Public:
		return nil
	case c == nil:
		return authErr
	case a == catalog.Customer:
		return nil
	case a == catalog.Admin && c.IsAdmin():
		return nil
	case a == catalog.Admin:
		return kit.Forbidden("this route is for platform staff")
	}
	return kit.Forbidden("route audience %q admits nobody", a)
}

// callKey carries a routed call's *routed in its context: one value, set
// once by guard, so the proxy's hot path copies the request no more.
type callKey struct{}

// routed is what the gateway knows of a routed call: the client's address
// as it resolved it, and, once forwarded, the breaker's reporter.
type routed struct {
	client string
	rep    reporter
}

func callOf(ctx context.Context) *routed {
	c, _ := ctx.Value(callKey{}).(*routed)
	return c
}

// reporter records a call's outcome in its breaker exactly once.
type reporter struct {
	once sync.Once
	done func(error)
}

func (r *reporter) report(err error) {
	if r.done != nil {
		r.once.Do(func() { r.done(err) })
	}
}

// ServeHTTP forwards a routed call to the upstream through its breaker.
func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	done, err := u.cb.Allow()
	if err != nil {
		kit.WriteError(w, r, kit.Errorf(http.StatusServiceUnavailable, CodeUpstreamDown, "%s is unavailable (circuit open)", u.name))
		return
	}
	c := callOf(r.Context())
	if c == nil { // not through guard: the client is the peer
		c = &routed{client: r.RemoteAddr}
		if a, err := parseAddr(r.RemoteAddr); err == nil {
			c.client = a.String()
		}
		r = r.WithContext(context.WithValue(r.Context(), callKey{}, c))
	}
	c.rep.done = done
	defer c.rep.report(nil)
	u.proxy.ServeHTTP(w, r)
}

// rewrite sends /api/<service><path> to <base><path>. The path keeps its
// escaping: "/api/content/videos/x%2Faccess" reaches content as the one
// segment "x%2Faccess" of /videos/{id}, never as /videos/x/access.
func (u *upstream) rewrite(pr *httputil.ProxyRequest) {
	prefix := "/api/" + u.name
	base := strings.TrimSuffix(u.base.Path, "/")
	pr.Out.URL.Scheme, pr.Out.URL.Host = u.base.Scheme, u.base.Host
	pr.Out.URL.Path = base + strings.TrimPrefix(pr.In.URL.Path, prefix)
	pr.Out.URL.RawPath = base + strings.TrimPrefix(pr.In.URL.EscapedPath(), prefix)
	pr.Out.Host = u.base.Host
	// One hop: the client's address as the gateway resolved it, through
	// the trusted proxies only, and what SetXForwarded would add.
	h := pr.Out.Header
	h["X-Forwarded-For"] = []string{callOf(pr.In.Context()).client}
	h["X-Forwarded-Host"] = []string{pr.In.Host}
	if pr.In.TLS == nil {
		h["X-Forwarded-Proto"] = []string{"http"}
	} else {
		h["X-Forwarded-Proto"] = []string{"https"}
	}
	pr.Out.Header.Set(kit.HeaderRequestID, kit.RequestID(pr.In.Context()))
}

func (u *upstream) modifyResponse(resp *http.Response) error {
	// The gateway's middleware has set the request id already, the same
	// one the upstream echoes: keep one.
	resp.Header.Del(kit.HeaderRequestID)
	if c := callOf(resp.Request.Context()); c != nil {
		// The upstream answered: only a gateway-level failure counts. A 503
		// from order because payment is down must not open order's breaker.
		var err error
		if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout {
			err = fmt.Errorf("%s answered %d", u.name, resp.StatusCode)
		}
		c.rep.report(err)
	}
	return nil
}

func (u *upstream) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if c := callOf(r.Context()); c != nil {
		c.rep.report(err)
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
