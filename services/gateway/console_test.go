package gateway

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/kit/traces"
)

// The trace the recorded buffers hold, and the order its saga spans name.
const (
	recordedTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	olderTrace    = "0af7651916cd43dd8448eb211c80319c"
	recordedOrder = "ord-42"
)

// revocable are tokens the test may revoke while a stream runs, as a
// sign-out does.
type revocable struct {
	mu      sync.Mutex
	revoked map[string]bool
}

func (r *revocable) Verify(ctx context.Context, tok string) (*kit.Claims, error) {
	r.mu.Lock()
	gone := r.revoked[tok]
	r.mu.Unlock()
	if gone {
		return nil, kit.Unauthenticated("token revoked")
	}
	return tokens.Verify(ctx, tok)
}

func (r *revocable) revoke(tok string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked[tok] = true
}

// opsOf is one instance's ops port: readiness, the metrics of a real
// registry, and the trace buffer's recorded answers (testdata/traces), as
// the contract of /debug/traces has them.
func opsOf(t *testing.T, name string, ready bool, m *kit.Metrics) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready {
			kit.WriteError(w, r, kit.Unavailable("not ready: nats: connection closed"))
			return
		}
		kit.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	recorded := func(file string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, err := os.ReadFile(filepath.Join("testdata", "traces", file))
			if err != nil {
				kit.WriteError(w, r, kit.NotFound("no trace"))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
		}
	}
	mux.HandleFunc("GET /debug/traces", recorded(name+"-list.json"))
	mux.HandleFunc("GET /debug/traces/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != recordedTrace {
			kit.WriteError(w, r, kit.NotFound("no trace %q", r.PathValue("id")))
			return
		}
		recorded(name+"-trace.json")(w, r)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// brokerWithBacklog is an embedded JetStream with its monitor on, holding
// a stream of three messages that a durable consumer has not read, and a
// watch's ephemeral consumer.
func brokerWithBacklog(t *testing.T) *url.URL {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPPort: -1,
		JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"order.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "notification-orders", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "order.confirmed", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.OrderedConsumer(ctx, "ORDERS", jetstream.OrderedConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://" + s.MonitorAddr().String())
	return u
}

// consoleRig is a gateway whose upstreams are order, product, analytics
// and notification: their APIs over mutual TLS (order's staff list and
// analytics' figures), their ops ports as above; the gateway's own ops
// port serves its trace buffer.
type consoleRig struct {
	*rig
	orderMetrics *kit.Metrics
	tokens       *revocable
}

func newConsoleRig(t *testing.T, co ConsoleOptions) *consoleRig {
	t.Helper()
	cr := &consoleRig{orderMetrics: kit.NewMetrics("order"), tokens: &revocable{revoked: map[string]bool{}}}
	orderAPI := http.NewServeMux()
	orderAPI.HandleFunc("GET /admin/orders", kit.RequireAdmin(cr.tokens, func(w http.ResponseWriter, r *http.Request) {
		kit.WriteJSON(w, http.StatusOK, map[string]any{"items": []map[string]any{{
			"id": recordedOrder, "status": "confirmed", "total": 12900,
			"history": []map[string]any{{"status": "pending"}, {"status": "confirmed"}},
			"steps":   map[string]any{"reserve": "done", "charge": map[string]any{"state": "done", "paymentId": "pay-1"}},
		}}})
	}))
	analyticsAPI := http.NewServeMux()
	analyticsAPI.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) {
		kit.WriteJSON(w, http.StatusOK, map[string]any{"total": 2, "videos": map[string]int{"sintel": 2}})
	})
	analyticsAPI.HandleFunc("GET /top", func(w http.ResponseWriter, r *http.Request) {
		kit.WriteJSON(w, http.StatusOK, map[string]any{"window": "5m0s", "items": []map[string]any{{"contentId": "sintel", "watchedSec": 120, "viewers": 2}}})
	})
	apis := map[string]http.Handler{"order": orderAPI, "analytics": analyticsAPI, "product": http.NotFoundHandler(), "notification": http.NotFoundHandler()}
	ups := map[string]Upstream{}
	for name, h := range apis {
		api := serveTLS(t, name, h)
		t.Cleanup(api.Close)
		var m *kit.Metrics
		if name == "order" {
			m = cr.orderMetrics
		} else {
			m = kit.NewMetrics(name)
		}
		ops := opsOf(t, name, name != "product", m)
		a, _ := url.Parse(api.URL)
		o, _ := url.Parse(ops.URL)
		ups[name] = Upstream{API: a, Ops: o}
	}
	self, _ := url.Parse(opsOf(t, "gateway", true, nil).URL)
	co.SelfOps = self
	g, err := NewGateway(ups, cr.tokens, kit.NewMetrics("gateway"), Options{RPS: 1e6, Burst: 1e6,
		Identity: kittest.Platform(t).Identity(t, catalog.Gateway), Console: co})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&service{g: g}).Routes(mux)
	api := httptest.NewServer(kit.Middleware(quiet, kit.NewMetrics("gateway"), mux))
	t.Cleanup(api.Close)
	cr.rig = &rig{t: t, api: api.URL, g: g}
	return cr
}

func decode[T any](t *testing.T, a answer) T {
	t.Helper()
	var v T
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("%v: %s", err, a.body)
	}
	return v
}

func statusOf(s Snapshot, name string) ServiceStatus {
	i := slices.IndexFunc(s.Services, func(x ServiceStatus) bool { return x.Name == name })
	if i < 0 {
		return ServiceStatus{}
	}
	return s.Services[i]
}

func near(p *float64, want float64) bool { return p != nil && math.Abs(*p-want) < 1e-9 }

// The snapshot: every service's readiness and breaker, rates from two
// scrapes of real Prometheus registries, the order flow with the staff
// list as order answers it, analytics' figures and the broker's backlog.
func TestConsoleSnapshot(t *testing.T) {
	r := newConsoleRig(t, ConsoleOptions{BrokerMonitor: brokerWithBacklog(t)})
	clock := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	r.g.console.now = func() time.Time { return clock }

	first := decode[Snapshot](t, r.do("GET", "/console/api/snapshot", staff))
	var names []string
	for _, s := range first.Services {
		names = append(names, s.Name)
	}
	// The gateway, then its upstreams in catalog order.
	if want := []string{"gateway", "product", "order", "notification", "analytics"}; !slices.Equal(names, want) {
		t.Errorf("services %v, want %v", names, want)
	}
	if o := statusOf(first, "order"); o.Ready != 1 || o.Instances != 1 || o.Breaker != "closed" || o.RequestsPerSec != nil {
		t.Errorf("order at the first scrape: %+v", o)
	}
	if p := statusOf(first, "product"); p.Ready != 0 || p.Instances != 1 {
		t.Errorf("product, not ready: %+v", p)
	}
	if len(first.Flow.Orders) != 1 || first.Flow.Orders[0]["id"] != recordedOrder || first.Flow.Orders[0]["steps"] == nil || first.Flow.Error != "" {
		t.Errorf("flow %+v", first.Flow)
	}
	if !strings.Contains(string(first.Streaming.Live), `"sintel":2`) || !strings.Contains(string(first.Streaming.Top), `"contentId":"sintel"`) {
		t.Errorf("streaming %+v", first.Streaming)
	}
	b := first.Broker
	i := slices.IndexFunc(b.Streams, func(s BrokerStream) bool { return s.Name == "ORDERS" })
	if b.Error != "" || i < 0 || b.Storage == 0 || b.Messages != 3 {
		t.Fatalf("broker %+v", b)
	}
	if s := b.Streams[i]; s.Messages != 3 || s.Watchers != 1 || len(s.Consumers) != 1 ||
		s.Consumers[0] != (BrokerConsumer{Name: "notification-orders", Pending: 3}) {
		t.Errorf("ORDERS %+v", s)
	}

	// Two seconds of traffic on order: 9 fast answers, 1 slow 503, four
	// orders confirmed and two cancelled.
	m := r.orderMetrics
	for range 9 {
		m.HTTPRequests.WithLabelValues("POST /orders", "POST", "201").Inc()
		m.HTTPDuration.WithLabelValues("POST /orders", "POST").Observe(0.004)
	}
	m.HTTPRequests.WithLabelValues("POST /orders", "POST", "503").Inc()
	m.HTTPDuration.WithLabelValues("POST /orders", "POST").Observe(0.8)
	// An event stream's duration is its watcher's patience, not latency.
	m.HTTPDuration.WithLabelValues("GET /live/stream", "GET").Observe(30)
	m.EventsOut.WithLabelValues("order.confirmed", "ok").Add(4)
	m.EventsOut.WithLabelValues("order.cancelled", "ok").Add(2)
	clock = clock.Add(2 * time.Second)

	second := decode[Snapshot](t, r.do("GET", "/console/api/snapshot", staff))
	o := statusOf(second, "order")
	// p99 of ten: the 9.9th, nine tenths into the (0.5s, 1s] bucket.
	if !near(o.RequestsPerSec, 5) || !near(o.ErrorsPerSec, 0.5) || !near(o.ErrorRatio, 0.1) || !near(o.P99Ms, 950) {
		t.Errorf("order's rates: %s", mustJSON(o.Rates))
	}
	if !near(second.Flow.ConfirmedPerSec, 2) || !near(second.Flow.CancelledPerSec, 1) {
		t.Errorf("flow: confirmed %s, cancelled %s", mustJSON(second.Flow.ConfirmedPerSec), mustJSON(second.Flow.CancelledPerSec))
	}
	if p := statusOf(second, "product"); !near(p.RequestsPerSec, 0) || p.ErrorRatio != nil || p.P99Ms != nil {
		t.Errorf("product, idle: %s", mustJSON(p.Rates))
	}

	// Within half an interval, viewers share the last scrape.
	clock = clock.Add(100 * time.Millisecond)
	if third := decode[Snapshot](t, r.do("GET", "/console/api/snapshot", staff)); !third.At.Equal(second.At) {
		t.Errorf("a snapshot 100ms later was scraped again: %s, then %s", second.At, third.At)
	}
}

// What cannot be read is said, section by section, and the rest still
// shows: no broker monitor configured, and order refusing the token.
func TestConsoleSnapshotSaysWhatFailed(t *testing.T) {
	r := newConsoleRig(t, ConsoleOptions{})
	s := decode[Snapshot](t, r.do("GET", "/console/api/snapshot", staff))
	if !strings.Contains(s.Broker.Error, catalog.EnvBrokerMonitorURL) {
		t.Errorf("broker error %q", s.Broker.Error)
	}
	if len(s.Services) != 5 || s.Flow.Error != "" {
		t.Errorf("%+v", s)
	}
	// order checks the token itself: a token it refuses shows in the flow.
	r.g.console.last = nil
	got := r.g.console.snapshot(context.Background(), "not-a-token")
	if !strings.Contains(got.Flow.Error, "order answered 401") || len(got.Services) != 5 || got.Streaming.Error != "" {
		t.Errorf("flow error %q, services %d, streaming error %q", got.Flow.Error, len(got.Services), got.Streaming.Error)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// The console's data routes are the staff's: no token is a 401 and a
// customer's a 403 at the guard, and the handlers check again when called
// without it.
func TestConsoleDataRoutesAreForStaff(t *testing.T) {
	r := newConsoleRig(t, ConsoleOptions{})
	handlers := r.g.console.handlers()
	for _, rt := range catalog.RoutesOf(catalog.Gateway) {
		if !strings.HasPrefix(rt.Path, "/console/api/") {
			continue
		}
		t.Run(rt.Pattern(), func(t *testing.T) {
			if rt.Audience != catalog.Admin {
				t.Fatalf("audience %s", rt.Audience)
			}
			path := concrete(rt.Path)
			for _, tt := range []struct {
				who, token string
				status     int
				code       string
			}{
				{"no token", "", http.StatusUnauthorized, kit.CodeUnauthenticated},
				{"a customer", customerA, http.StatusForbidden, kit.CodeForbidden},
			} {
				if a := r.do("GET", path, tt.token); a.status != tt.status || a.code() != tt.code {
					t.Errorf("%s at the gateway: %d %s", tt.who, a.status, a.body)
				}
				req := httptest.NewRequest("GET", path, nil)
				if tt.token != "" {
					req.Header.Set("Authorization", "Bearer "+tt.token)
				}
				rec := httptest.NewRecorder()
				handlers[rt.Pattern()](rec, req)
				if rec.Code != tt.status {
					t.Errorf("%s past the guard: %d %s", tt.who, rec.Code, rec.Body)
				}
			}
		})
	}
}

// Traces are merged from every service's buffer: one list entry per trace
// with the earliest root and every service, one span per span id
// (product's buffer repeats one of order's), in start order; a search by
// order id finds the trace whose saga spans name it.
func TestConsoleMergesTraces(t *testing.T) {
	r := newConsoleRig(t, ConsoleOptions{})
	list := decode[traces.List](t, r.do("GET", "/console/api/traces", staff))
	if len(list.Traces) != 2 || list.Traces[0].TraceID != recordedTrace || list.Traces[1].TraceID != olderTrace {
		t.Fatalf("traces %s", mustJSON(list.Traces))
	}
	top := list.Traces[0]
	if top.RootName != "POST /api/order/orders" || top.DurationMs != 60 ||
		!slices.Equal(top.Services, []string{"gateway", "notification", "order", "product"}) {
		t.Errorf("merged summary %s", mustJSON(top))
	}
	if l := decode[traces.List](t, r.do("GET", "/console/api/traces?limit=1", staff)); len(l.Traces) != 1 {
		t.Errorf("limit=1: %d traces", len(l.Traces))
	}

	tr := decode[traces.Trace](t, r.do("GET", "/console/api/traces/"+recordedTrace, staff))
	var spans []string
	for _, s := range tr.Spans {
		spans = append(spans, s.Service+" "+s.Name)
	}
	want := []string{
		"gateway POST /api/order/orders", "gateway order", "order POST /orders", "order saga reserve",
		"product product.v1.Stock/Reserve", "order saga charge", "order order.confirmed publish", "notification order.confirmed process",
	}
	if !slices.Equal(spans, want) {
		t.Errorf("spans\n%q\nwant\n%q", spans, want)
	}
	if last := tr.Spans[len(tr.Spans)-1]; len(last.Links) != 1 || last.Links[0].SpanID != "b000000000000004" || last.ParentSpanID != "b000000000000004" {
		t.Errorf("the consumer's span lost its link: %s", mustJSON(last))
	}

	found := decode[traces.List](t, r.do("GET", "/console/api/traces?orderId="+recordedOrder, staff))
	if len(found.Traces) != 1 || found.Traces[0].TraceID != recordedTrace {
		t.Errorf("by order: %s", mustJSON(found.Traces))
	}
	if none := decode[traces.List](t, r.do("GET", "/console/api/traces?orderId=ord-none", staff)); len(none.Traces) != 0 {
		t.Errorf("an order no span names: %s", mustJSON(none.Traces))
	}

	for _, tt := range []struct {
		path, code, field string
		status            int
	}{
		{"/console/api/traces/" + olderTrace + "0", kit.CodeNotFound, "", http.StatusNotFound},
		{"/console/api/traces?limit=0", kit.CodeInvalid, "limit", http.StatusBadRequest},
		{"/console/api/traces?limit=101", kit.CodeInvalid, "limit", http.StatusBadRequest},
	} {
		a := r.do("GET", tt.path, staff)
		var e kit.ErrorBody
		_ = json.Unmarshal(a.body, &e)
		if a.status != tt.status || e.Error.Code != tt.code || e.Error.Field != tt.field {
			t.Errorf("%s: %d %s", tt.path, a.status, a.body)
		}
	}
}

// The stream pushes snapshots, and ends once the token is no longer valid
// (signed out), so a watcher never sees more than their token allows.
func TestConsoleStreamEndsWithTheToken(t *testing.T) {
	r := newConsoleRig(t, ConsoleOptions{Interval: 5 * time.Millisecond})
	// This rig's verifier is its own: revoking staff here touches no
	// other test.
	const watcher = staff
	req, _ := http.NewRequest("GET", r.api+"/console/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+watcher)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var events []string
	var data string
	for sc.Scan() {
		line := sc.Text()
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			events = append(events, ev)
			if ev == "snapshot" && len(events) == 2 {
				r.tokens.revoke(watcher)
			}
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok && events[len(events)-1] == "snapshot" {
			data = d
		}
	}
	if len(events) < 3 || events[0] != "snapshot" || events[len(events)-1] != "end" {
		t.Fatalf("events %v", events)
	}
	var s Snapshot
	if err := json.Unmarshal([]byte(data), &s); err != nil || len(s.Services) != 5 {
		t.Errorf("a snapshot event's data: %v %.200s", err, data)
	}
}

// The page and its assets come from the binary; the page names only
// assets that exist; anything else under /console is unknown.
func TestConsolePageAndAssets(t *testing.T) {
	r := newConsoleRig(t, ConsoleOptions{})
	page := r.do("GET", "/console", "")
	if page.status != http.StatusOK || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(page.header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("%d %v", page.status, page.header)
	}
	refs := regexp.MustCompile(`"/console/assets/([^"]+)"`).FindAllStringSubmatch(string(page.body), -1)
	if len(refs) != 2 {
		t.Fatalf("the page names %d assets: %v", len(refs), refs)
	}
	types := map[string]string{".css": "text/css", ".js": "text/javascript"}
	for _, ref := range refs {
		a := r.do("GET", "/console/assets/"+ref[1], "")
		if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), types[filepath.Ext(ref[1])]) || len(a.body) == 0 {
			t.Errorf("%s: %d %s", ref[1], a.status, a.header.Get("Content-Type"))
		}
	}
	// Compressed for a browser that asks, the same bytes once inflated.
	for _, ref := range append(refs, []string{"", "index.html"}) {
		path := "/console/assets/" + ref[1]
		if ref[1] == "index.html" {
			path = "/console"
		}
		req, _ := http.NewRequest("GET", r.api+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%s: %v, Content-Encoding %q", path, err, resp.Header.Get("Content-Encoding"))
		}
		inflated, _ := io.ReadAll(zr)
		resp.Body.Close()
		plain, _ := consoleFiles.ReadFile("console/" + ref[1])
		if !bytes.Equal(inflated, plain) {
			t.Errorf("%s: gzip inflates to %d bytes, the file has %d", path, len(inflated), len(plain))
		}
	}
	for _, path := range []string{"/console/assets/nothing.js", "/console/assets/index.html", "/console/", "/console/api/nothing"} {
		if a := r.do("GET", path, staff); a.status != http.StatusNotFound {
			t.Errorf("%s: %d %s", path, a.status, a.body)
		}
	}
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, tt := range []struct {
		name    string
		buckets map[float64]float64
		q, want float64
		ok      bool
	}{
		{"empty", map[float64]float64{0.1: 0, inf: 0}, 0.99, 0, false},
		{"no +Inf", map[float64]float64{0.1: 4}, 0.99, 0, false},
		{"all in the first bucket", map[float64]float64{0.1: 10, 1: 10, inf: 10}, 0.5, 0.05, true},
		{"interpolated in the second", map[float64]float64{0.1: 0, 1: 10, inf: 10}, 0.5, 0.55, true},
		{"past the last bound", map[float64]float64{0.1: 5, 1: 5, inf: 10}, 0.99, 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := quantile(tt.q, tt.buckets)
			if ok != tt.ok || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("quantile(%g) = %g, %v; want %g, %v", tt.q, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// A counter that went down means the service restarted: the newer sample
// counts from zero, never a negative rate.
func TestRatesAcrossARestart(t *testing.T) {
	t0 := time.Unix(0, 0)
	old, cur := newSample(t0), newSample(t0.Add(time.Second))
	old.requests, cur.requests = 100, 3
	if r := ratesBetween(old, cur); !near(r.RequestsPerSec, 3) {
		t.Errorf("after a restart: %s", mustJSON(r))
	}
}

// A host resolves to every instance behind it; an address is one.
func TestInstancesResolveTheHost(t *testing.T) {
	g := &Gateway{resolve: func(_ context.Context, host string) ([]string, error) {
		if host == "shop-order-ops.demo.svc" {
			return []string{"10.0.0.7", "10.0.0.5"}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}}
	for _, tt := range []struct{ base, want string }{
		{"http://shop-order-ops.demo.svc:8081", "http://10.0.0.5:8081 http://10.0.0.7:8081"},
		{"http://127.0.0.1:8081", "http://127.0.0.1:8081"},
		{"http://unknown.demo.svc:8081", "http://unknown.demo.svc:8081"},
	} {
		u, _ := url.Parse(tt.base)
		var got []string
		for _, i := range g.instances(context.Background(), u) {
			got = append(got, i.String())
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%s: %v, want %s", tt.base, got, tt.want)
		}
	}
}

// Each instance is measured against its own earlier sample: one that
// leaves (a scale-down) or joins takes its counts with it, never a drop
// or a jump in the service's rate.
func TestRatesAcrossInstancesComingAndGoing(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(sec int, requests float64) *sample {
		s := newSample(t0.Add(time.Duration(sec) * time.Second))
		s.requests = requests
		return s
	}
	hs := instanceHistories{}
	hs.push(map[string]*sample{"10.0.0.5:8081": at(0, 1000), "10.0.0.7:8081": at(0, 50)}, t0)
	// 10.0.0.7 is gone; 10.0.0.9 has just started.
	rates := sumRates(hs.push(map[string]*sample{"10.0.0.5:8081": at(2, 1010), "10.0.0.9:8081": at(2, 3)}, t0.Add(2*time.Second)))
	if !near(rates.RequestsPerSec, 5) {
		t.Errorf("rate across a scale-down and a new instance: %s, want 5/s from the one measured twice", mustJSON(rates))
	}
	// Once silent for a window, an instance is forgotten.
	hs.push(map[string]*sample{"10.0.0.5:8081": at(20, 1100)}, t0.Add(20*time.Second))
	if _, kept := hs["10.0.0.7:8081"]; kept || len(hs) != 1 {
		t.Errorf("histories kept: %v", slices.Collect(maps.Keys(hs)))
	}
}
