package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/traces"
)

// The console is a page for staff, served by the gateway: its HTML, CSS
// and script are embedded in the binary (no build step), and it reads the
// platform through the console's admin routes, which the gateway answers
// itself by asking what it already reaches: every upstream's ops port
// (/readyz, /metrics, /debug/traces), its own breakers, order's and
// analytics' APIs with the admin's own token, and the broker's monitoring
// endpoint, which needs no broker credentials.
//
//go:embed console
var consoleFiles embed.FS

// ConsoleOptions say where the console reads what the gateway does not
// hold.
type ConsoleOptions struct {
	// BrokerMonitor is the broker's HTTP monitor (BROKER_MONITOR_URL);
	// nil: the console shows no broker.
	BrokerMonitor *url.URL
	// SelfOps is the gateway's own ops port, whose trace buffer holds the
	// gateway's spans.
	SelfOps *url.URL
	// Peers is the ops host of every gateway instance, this one included
	// (GATEWAY_OPS_URL: a headless Service): the request that began a
	// trace may have come through another. Nil: this instance alone, at
	// SelfOps, with its own registry's figures.
	Peers *url.URL
	// Interval is how often the console's event stream pushes; default 1s.
	Interval time.Duration
}

// Console section limits.
const (
	consoleOrders = 12
	consoleTop    = 5
	// rateWindow is how far back rates reach.
	rateWindow = 10 * time.Second
)

type console struct {
	g     *Gateway
	m     *kit.Metrics
	opts  ConsoleOptions
	names []string // upstreams, in catalog order
	plain *http.Client
	api   map[string]*http.Client // mutual TLS to an upstream's API

	// One scrape at a time feeds the histories, however many watch.
	scrape sync.Mutex
	// hist holds each service's instances' recent samples, by name.
	hist   map[string]instanceHistories
	last   *Snapshot
	lastAt time.Time
	now    func() time.Time
}

func newConsole(g *Gateway, m *kit.Metrics, o ConsoleOptions) *console {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	c := &console{g: g, m: m, opts: o, plain: g.health, api: map[string]*http.Client{}, hist: map[string]instanceHistories{},
		now: time.Now}
	for _, s := range catalog.All() {
		if up, ok := g.upstreams[s.Name]; ok {
			c.names = append(c.names, s.Name)
			c.api[s.Name] = &http.Client{Transport: up.proxy.Transport, Timeout: 5 * time.Second}
		}
	}
	return c
}

// handlers are the console's routes, by the catalog's patterns. The data
// routes check the admin role again, whatever the guard checked.
func (c *console) handlers() map[string]http.HandlerFunc {
	admin := func(h http.HandlerFunc) http.HandlerFunc { return kit.RequireAdmin(c.g.tokens, h) }
	return map[string]http.HandlerFunc{
		"GET /console":                      c.servePage,
		"GET /console/assets/{name}":        c.serveAsset,
		"GET /console/api/snapshot":         admin(c.serveSnapshot),
		"GET /console/api/events":           admin(c.serveEvents),
		"GET /console/api/traces":           admin(c.serveTraces),
		"GET /console/api/traces/{traceId}": admin(c.serveTrace),
	}
}

// Snapshot is everything the console shows at one moment.
type Snapshot struct {
	At        time.Time       `json:"at"`
	Services  []ServiceStatus `json:"services"`
	Flow      Flow            `json:"flow"`
	Streaming Streaming       `json:"streaming"`
	Broker    Broker          `json:"broker"`
}

// ServiceStatus is one service's line.
type ServiceStatus struct {
	Name string `json:"name"`
	// Instances are the addresses the service's ops host resolves to
	// (on a cluster every pod, ready or not); Ready of them answer their
	// /readyz.
	Instances int `json:"instances"`
	Ready     int `json:"ready"`
	Rates
	// Breaker is the gateway's circuit breaker to the service: closed,
	// half-open or open; empty for the gateway itself.
	Breaker string `json:"breaker,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Flow is the order saga at work.
type Flow struct {
	ConfirmedPerSec *float64 `json:"confirmedPerSec"`
	CancelledPerSec *float64 `json:"cancelledPerSec"`
	// Orders are the latest orders as order's GET /admin/orders answers
	// them: whatever fields the saga records.
	Orders []map[string]any `json:"orders"`
	Error  string           `json:"error,omitempty"`
}

// Streaming is analytics' public figures, as analytics answers them.
type Streaming struct {
	Live  json.RawMessage `json:"live"`
	Top   json.RawMessage `json:"top"`
	Error string          `json:"error,omitempty"`
}

// snapshot gathers the figures, at most once per half interval: viewers
// share one scrape. token is the caller's, which order checks again.
func (c *console) snapshot(ctx context.Context, token string) Snapshot {
	c.scrape.Lock()
	defer c.scrape.Unlock()
	now := c.now()
	if c.last != nil && now.Sub(c.lastAt) < c.opts.Interval/2 {
		return *c.last
	}
	s := Snapshot{At: now.UTC(), Services: make([]ServiceStatus, 1+len(c.names))}
	samples := make([]map[string]*sample, 1+len(c.names))
	var wg sync.WaitGroup
	// The gateway first.
	wg.Go(func() { s.Services[0], samples[0] = c.self(ctx, now) })
	for i, name := range c.names {
		wg.Go(func() { s.Services[i+1], samples[i+1] = c.service(ctx, name, now) })
	}
	wg.Go(func() { s.Streaming = c.streaming(ctx, token) })
	wg.Go(func() { s.Broker = c.broker(ctx) })
	var orders []map[string]any
	var ordersErr error
	wg.Go(func() { orders, ordersErr = c.orders(ctx, token) })
	wg.Wait()

	var orderSpans []span
	for i := range s.Services {
		name := s.Services[i].Name
		hs := c.hist[name]
		if hs == nil {
			hs = instanceHistories{}
			c.hist[name] = hs
		}
		spans := hs.push(samples[i], now)
		s.Services[i].Rates = sumRates(spans)
		if name == "order" {
			orderSpans = spans
		}
	}
	s.Flow = Flow{Orders: orders,
		ConfirmedPerSec: perSecond(orderSpans, "order.confirmed"),
		CancelledPerSec: perSecond(orderSpans, "order.cancelled")}
	if ordersErr != nil {
		s.Flow.Error = ordersErr.Error()
	}
	if s.Flow.Orders == nil {
		s.Flow.Orders = []map[string]any{}
	}
	c.last, c.lastAt = &s, now
	return s
}

// self is the gateway's own line: every instance's, read on their ops
// ports like an upstream's, or this one's own registry when it knows no
// peers.
func (c *console) self(ctx context.Context, now time.Time) (ServiceStatus, map[string]*sample) {
	st := ServiceStatus{Name: catalog.Gateway}
	if c.opts.Peers != nil {
		samples := c.readInstances(ctx, &st, c.g.instances(ctx, c.opts.Peers), now)
		return st, samples
	}
	st.Instances, st.Ready = 1, 1
	families, err := c.m.Registry.Gather()
	if err != nil {
		st.Error = err.Error()
		return st, nil
	}
	s := newSample(now)
	byName := map[string]*dtoFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	s.add(byName)
	return st, map[string]*sample{"self": s}
}

// service reads one upstream's instances: readiness, and the metrics of
// those that answer, by instance.
func (c *console) service(ctx context.Context, name string, now time.Time) (ServiceStatus, map[string]*sample) {
	up := c.g.upstreams[name]
	st := ServiceStatus{Name: name, Breaker: up.cb.State().String()}
	samples := c.readInstances(ctx, &st, c.g.instances(ctx, up.ops), now)
	return st, samples
}

// readInstances reads each target's readiness and metrics into st, and answers
// the samples of those whose metrics answered, by address.
func (c *console) readInstances(ctx context.Context, st *ServiceStatus, targets []*url.URL, now time.Time) map[string]*sample {
	st.Instances = len(targets)
	samples := map[string]*sample{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Go(func() {
			ready := c.ready(ctx, t)
			families, err := c.metrics(ctx, t)
			mu.Lock()
			defer mu.Unlock()
			if ready {
				st.Ready++
			}
			if err != nil {
				st.Error = err.Error()
				return
			}
			s := newSample(now)
			s.add(families)
			samples[t.Host] = s
		})
	}
	wg.Wait()
	return samples
}

func (c *console) ready(ctx context.Context, ops *url.URL) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ops.JoinPath("readyz").String(), nil)
	resp, err := c.plain.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (c *console) metrics(ctx context.Context, ops *url.URL) (map[string]*dtoFamily, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ops.JoinPath("metrics").String(), nil)
	// Text, never the protobuf or OpenMetrics forms.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.plain.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d", req.URL, resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// instances resolves base's host to every address it has, one URL each:
// a Service's virtual IP is one, a headless Service's pods are many.
func (g *Gateway) instances(ctx context.Context, base *url.URL) []*url.URL {
	host, port := base.Hostname(), base.Port()
	if net.ParseIP(host) != nil || host == "localhost" {
		return []*url.URL{base}
	}
	addrs, err := g.resolve(ctx, host)
	if err != nil || len(addrs) == 0 {
		return []*url.URL{base}
	}
	slices.Sort(addrs)
	out := make([]*url.URL, 0, len(addrs))
	for _, a := range addrs {
		u := *base
		u.Host = a
		if port != "" {
			u.Host = net.JoinHostPort(a, port)
		}
		out = append(out, &u)
	}
	return out
}

// apiGet calls an upstream's API as the gateway, with the caller's token,
// and answers the body of a 200.
func (c *console) apiGet(ctx context.Context, service, pathQuery, token string) (json.RawMessage, error) {
	up, ok := c.g.upstreams[service]
	if !ok {
		return nil, fmt.Errorf("%s does not run on this platform", service)
	}
	rel, err := url.Parse(pathQuery)
	if err != nil {
		return nil, err
	}
	u := *up.base
	u.Path, u.RawPath, u.RawQuery = strings.TrimSuffix(up.base.Path, "/")+rel.Path, "", rel.RawQuery
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set(kit.HeaderRequestID, kit.RequestID(ctx))
	resp, err := c.api[service].Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", service, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e kit.ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return nil, fmt.Errorf("%s answered %d: %s", service, resp.StatusCode, e.Error.Message)
		}
		return nil, fmt.Errorf("%s answered %d", service, resp.StatusCode)
	}
	return body, nil
}

func (c *console) orders(ctx context.Context, token string) ([]map[string]any, error) {
	raw, err := c.apiGet(ctx, "order", "/admin/orders?limit="+strconv.Itoa(consoleOrders), token)
	if err != nil {
		return nil, err
	}
	var l struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

func (c *console) streaming(ctx context.Context, token string) Streaming {
	var s Streaming
	var err error
	if s.Live, err = c.apiGet(ctx, "analytics", "/live", token); err != nil {
		s.Error = err.Error()
		return s
	}
	if s.Top, err = c.apiGet(ctx, "analytics", "/top?limit="+strconv.Itoa(consoleTop), token); err != nil {
		s.Error = err.Error()
	}
	return s
}

func (c *console) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	tok, _ := kit.BearerToken(r)
	kit.WriteJSON(w, http.StatusOK, c.snapshot(r.Context(), tok))
}

// serveEvents pushes a snapshot at once and then every interval, as
// server-sent events. The page reads them with fetch, which, unlike
// EventSource, can send the token. The stream ends when the token stops
// being valid (expired, or signed out), so a watcher is never shown more
// than their token allows.
func (c *console) serveEvents(w http.ResponseWriter, r *http.Request) {
	tok, _ := kit.BearerToken(r)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	ctx := r.Context()
	for {
		if _, err := c.g.tokens.Verify(ctx, tok); err != nil {
			fmt.Fprintf(w, "event: end\ndata: %q\n\n", "the token is no longer valid: log in again")
			_ = rc.Flush()
			return
		}
		b, err := json.Marshal(c.snapshot(ctx, tok))
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", b); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *console) serveTraces(w http.ResponseWriter, r *http.Request) {
	limit, err := parseTraceLimit(r.URL.Query().Get("limit"))
	if err != nil {
		kit.WriteError(w, r, kit.Invalid("limit", "%v", err))
		return
	}
	var out []traces.Summary
	if id := r.URL.Query().Get("orderId"); id != "" {
		out = c.tracesOfOrder(r.Context(), id, limit)
	} else {
		out = c.traces(r.Context(), limit)
	}
	kit.WriteJSON(w, http.StatusOK, map[string]any{"traces": out})
}

func (c *console) serveTrace(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("traceId")
	tr := c.trace(r.Context(), id)
	if len(tr.Spans) == 0 {
		kit.WriteError(w, r, kit.NotFound("no service holds trace %q: it may have left the buffers", id))
		return
	}
	kit.WriteJSON(w, http.StatusOK, tr)
}

func (c *console) servePage(w http.ResponseWriter, r *http.Request) {
	c.serveFile(w, r, "index.html")
}

func (c *console) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name == "index.html" {
		unknownRoute(w, r)
		return
	}
	c.serveFile(w, r, name)
}

// consoleGzip holds each embedded file compressed once, for the browsers
// that accept gzip (all of them): a third of the bytes.
var consoleGzip = func() map[string][]byte {
	out := map[string][]byte{}
	entries, _ := consoleFiles.ReadDir("console")
	for _, e := range entries {
		b, _ := consoleFiles.ReadFile("console/" + e.Name())
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		out[e.Name()] = buf.Bytes()
	}
	return out
}()

func (c *console) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	b, err := consoleFiles.ReadFile("console/" + name)
	if err != nil {
		kit.WriteError(w, r, kit.NotFound("no console asset %q", name))
		return
	}
	w.Header().Set("Vary", "Accept-Encoding")
	if z, ok := consoleGzip[name]; ok && acceptsGzip(r) {
		w.Header().Set("Content-Encoding", "gzip")
		b = z
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	// The page runs its own script and style only, and talks to this
	// origin only.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(b)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
