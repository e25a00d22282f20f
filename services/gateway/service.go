package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Definition registers the gateway with the binary.
var Definition = kit.Definition{Name: "gateway", Needs: kit.Needs{Auth: true}, New: New}

type service struct{ g *Gateway }

// New builds the gateway from its config: the upstreams whose URL is set,
// each with its <UPSTREAM>_OPS_URL, TRUSTED_PROXY_CIDRS, and the optional
// GATEWAY_TIMEOUT, BREAKER_FAILURES, BREAKER_OPEN_FOR, RATE_LIMIT_RPS and
// RATE_LIMIT_BURST.
func New(_ context.Context, d kit.Deps) (kit.Service, error) {
	c := d.Config
	var o Options
	var err error
	if o.Timeout, err = c.Duration("GATEWAY_TIMEOUT", 15*time.Second); err != nil {
		return nil, err
	}
	n, err := c.Int("BREAKER_FAILURES", 5)
	if err != nil {
		return nil, err
	}
	o.BreakerFailures = uint32(n)
	if o.BreakerOpenFor, err = c.Duration("BREAKER_OPEN_FOR", 10*time.Second); err != nil {
		return nil, err
	}
	rps, err := c.Int("RATE_LIMIT_RPS", 100)
	if err != nil {
		return nil, err
	}
	o.RPS = float64(rps)
	if o.Burst, err = c.Int("RATE_LIMIT_BURST", 2*rps); err != nil {
		return nil, err
	}
	if o.TrustedProxies, err = ParseCIDRs(c.String(catalog.EnvTrustedProxyCIDRs)); err != nil {
		return nil, fmt.Errorf("%s=%q: want comma-separated CIDRs like 10.0.0.0/8: %v", catalog.EnvTrustedProxyCIDRs, c.String(catalog.EnvTrustedProxyCIDRs), err)
	}
	ups := map[string]Upstream{}
	for name, api := range c.Upstreams {
		env := catalog.EnvOpsURL(name)
		v := c.String(env)
		if v == "" {
			return nil, fmt.Errorf("%s is required with %s", env, catalog.EnvURL(name))
		}
		ops, err := url.Parse(v)
		if err != nil || (ops.Scheme != "http" && ops.Scheme != "https") || ops.Host == "" {
			return nil, fmt.Errorf("%s=%q: want an absolute http(s) URL", env, v)
		}
		ups[name] = Upstream{API: api, Ops: ops}
	}
	o.Identity = d.Identity
	if o.Console, err = consoleOptions(c); err != nil {
		return nil, err
	}
	o.Tracing = d.Tracing
	g, err := NewGateway(ups, d.Tokens, d.Metrics, o)
	if err != nil {
		return nil, err
	}
	return &service{g: g}, nil
}

// consoleOptions reads BROKER_MONITOR_URL and GATEWAY_OPS_URL (every
// gateway instance's ops host), both optional, and the gateway's own ops
// address, whose trace buffer the console reads like the others'.
func consoleOptions(c kit.Config) (ConsoleOptions, error) {
	var o ConsoleOptions
	if v := c.String(catalog.EnvBrokerMonitorURL); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return o, fmt.Errorf("%s=%q: want the broker monitor's http URL, like http://shop-nats.demo.svc:8222", catalog.EnvBrokerMonitorURL, v)
		}
		o.BrokerMonitor = u
	}
	if v := c.String(catalog.EnvOpsURL(catalog.Gateway)); v != "" {
		u, err := url.Parse(v)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return o, fmt.Errorf("%s=%q: want the gateway's ops host as an http URL, like http://shop-gateway-ops.demo.svc:8081", catalog.EnvOpsURL(catalog.Gateway), v)
		}
		o.Peers = u
	}
	if host, port, err := net.SplitHostPort(c.OpsAddr); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		o.SelfOps = &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}
	}
	return o, nil
}

// Routes serves the route table, and nothing else.
func (s *service) Routes(mux *http.ServeMux) { s.g.Register(mux) }

// OpsRoutes serves the health detail on the ops port, which nothing
// routes publicly.
func (s *service) OpsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /health/detail", s.g.serveHealthDetail)
}

// Run forgets idle rate-limit buckets until ctx ends.
func (s *service) Run(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.g.limiter.Forget(10 * time.Minute)
		}
	}
}
