package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Tokens the test verifier knows. The gateway sees only claims through its
// Verifier, so the tests do not depend on how tokens are signed.
const (
	customerA = "token-of-customer-a"
	customerB = "token-of-customer-b"
	staff     = "token-of-staff"
)

type fakeTokens map[string]*kit.Claims

func (f fakeTokens) Verify(_ context.Context, tok string) (*kit.Claims, error) {
	if c, ok := f[tok]; ok {
		return c, nil
	}
	return nil, errors.New("signature is invalid")
}

var tokens = fakeTokens{
	customerA: {RegisteredClaims: jwt.RegisteredClaims{Subject: "a"}},
	customerB: {RegisteredClaims: jwt.RegisteredClaims{Subject: "b"}},
	staff:     {Roles: []string{kit.RoleAdmin}, RegisteredClaims: jwt.RegisteredClaims{Subject: "s"}},
}

// call is what a stub upstream saw.
type call struct {
	Method, Path, Query, XFF, Auth string
}

// stub stands in for one service: its API records every call and answers
// through kit's middleware (which echoes the request id, as every service
// does); its ops port answers /readyz as told.
type stub struct {
	name     string
	api, ops *httptest.Server
	ready    atomic.Bool
	mu       sync.Mutex
	calls    []call
}

func newStub(t *testing.T, name string) *stub {
	s := &stub{name: name}
	s.ready.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.calls = append(s.calls, call{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("X-Forwarded-For"), r.Header.Get("Authorization")})
		s.mu.Unlock()
		kit.WriteJSON(w, http.StatusOK, map[string]string{"service": name})
	})
	s.api = serveTLS(t, name, kit.Middleware(quiet, kit.NewMetrics(name), mux))
	s.ops = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && s.ready.Load() {
			kit.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
			return
		}
		kit.WriteError(w, r, kit.Unavailable("not ready: nats: connection closed"))
	}))
	t.Cleanup(s.api.Close)
	t.Cleanup(s.ops.Close)
	return s
}

// serveTLS serves h as a service's API port does: mutual TLS with the
// identity of as, admitting the gateway's certificate only. Its URL is
// https.
func serveTLS(t *testing.T, as string, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Listener = tls.NewListener(s.Listener, kit.APITLSConfig(kittest.Platform(t).Identity(t, as)))
	s.Start()
	s.URL = "https://" + s.Listener.Addr().String()
	return s
}

func (s *stub) take() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

// rig is a gateway in front of stubs, served as kit.Run serves it: the
// service's routes through kit's middleware on one server, its ops routes
// on another.
type rig struct {
	t        *testing.T
	api, ops string
	stubs    map[string]*stub
	g        *Gateway
}

func newRig(t *testing.T, services []string, o Options) *rig {
	t.Helper()
	r := &rig{t: t, stubs: map[string]*stub{}}
	ups := map[string]Upstream{}
	for _, name := range services {
		s := newStub(t, name)
		r.stubs[name] = s
		api, _ := url.Parse(s.api.URL)
		ops, _ := url.Parse(s.ops.URL)
		ups[name] = Upstream{API: api, Ops: ops}
	}
	if o.RPS == 0 {
		o.RPS, o.Burst = 1e6, 1e6
	}
	if o.Identity == nil {
		o.Identity = kittest.Platform(t).Identity(t, catalog.Gateway)
	}
	g, err := NewGateway(ups, tokens, kit.NewMetrics("gateway"), o)
	if err != nil {
		t.Fatal(err)
	}
	r.g = g
	svc := &service{g: g}
	mux, opsMux := http.NewServeMux(), http.NewServeMux()
	svc.Routes(mux)
	svc.OpsRoutes(opsMux)
	api := httptest.NewServer(kit.Middleware(quiet, kit.NewMetrics("gateway"), mux))
	ops := httptest.NewServer(kit.Middleware(quiet, kit.NewMetrics("gateway"), opsMux))
	t.Cleanup(api.Close)
	t.Cleanup(ops.Close)
	r.api, r.ops = api.URL, ops.URL
	return r
}

func allUpstreams() []string {
	gw, _ := catalog.Lookup(catalog.Gateway)
	return gw.Upstreams
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) code() string {
	var b kit.ErrorBody
	_ = json.Unmarshal(a.body, &b)
	return b.Error.Code
}

func (r *rig) do(method, path, token string, hdr ...string) answer {
	r.t.Helper()
	return r.doAt(r.api, method, path, token, hdr...)
}

func (r *rig) doAt(base, method, path, token string, hdr ...string) answer {
	r.t.Helper()
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		r.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// A stream does not end: its status and headers are the answer.
		return answer{resp.StatusCode, resp.Header, nil}
	}
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

// concrete fills a route's wildcards: {id} → "id-1".
func concrete(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, "{"); ok {
			segs[i] = strings.TrimSuffix(name, "}") + "-1"
		}
	}
	return strings.Join(segs, "/")
}

// query gives a route's required query parameters a value.
func query(rt catalog.Route) string {
	v := url.Values{}
	for _, q := range rt.Query {
		if q.Required {
			v.Set(q.Name, "q-1")
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// tokenFor is a token the route's audience admits.
func tokenFor(a catalog.Audience) string {
	switch a {
	case catalog.Customer:
		return customerA
	case catalog.Admin:
		return staff
	}
	return ""
}

// Every route of the table reaches its own service, at its service path,
// with the method, query and token it came with, and answers with one
// request id.
func TestEveryRouteReachesItsService(t *testing.T) {
	r := newRig(t, allUpstreams(), Options{})
	for _, rt := range catalog.Routes() {
		if rt.Own() {
			continue
		}
		t.Run(rt.Pattern(), func(t *testing.T) {
			r.t = t
			a := r.do(rt.Method, concrete(rt.Path)+query(rt), tokenFor(rt.Audience))
			if a.status != http.StatusOK || !strings.Contains(string(a.body), `"service":"`+rt.Service+`"`) {
				t.Fatalf("%d %s, want the answer of %s", a.status, a.body, rt.Service)
			}
			if ids := a.header.Values(kit.HeaderRequestID); len(ids) != 1 {
				t.Errorf("X-Request-Id %q, want exactly one", ids)
			}
			want := call{Method: rt.Method, Path: concrete(rt.ServicePath()), Query: strings.TrimPrefix(query(rt), "?"), XFF: "127.0.0.1"}
			if tok := tokenFor(rt.Audience); tok != "" {
				want.Auth = "Bearer " + tok
			}
			for name, s := range r.stubs {
				calls := s.take()
				switch {
				case name == rt.Service && (len(calls) != 1 || calls[0] != want):
					t.Errorf("%s saw %+v, want %+v", name, calls, want)
				case name != rt.Service && len(calls) > 0:
					t.Errorf("%s saw %+v, meant for %s", name, calls, rt.Service)
				}
			}
		})
	}
}

// Without a token only public routes answer; with a customer's token,
// admin routes answer 403; a token the verifier refuses is a 401 wherever
// one is needed. None of the refused calls reaches a service.
func TestEveryRouteEnforcesItsAudience(t *testing.T) {
	r := newRig(t, allUpstreams(), Options{})
	for _, rt := range catalog.Routes() {
		t.Run(rt.Pattern(), func(t *testing.T) {
			r.t = t
			path := concrete(rt.Path) + query(rt)
			type attempt struct {
				who, token string
				status     int
				code       string
			}
			var attempts []attempt
			switch rt.Audience {
			case catalog.Public:
				attempts = []attempt{{"no token", "", 0, ""}, {"a forged token", "forged", 0, ""}}
			case catalog.Customer:
				attempts = []attempt{
					{"no token", "", 401, kit.CodeUnauthenticated},
					{"a forged token", "forged", 401, kit.CodeUnauthenticated},
					{"customer B", customerB, 0, ""},
					{"staff", staff, 0, ""},
				}
			case catalog.Admin:
				attempts = []attempt{
					{"no token", "", 401, kit.CodeUnauthenticated},
					{"a forged token", "forged", 401, kit.CodeUnauthenticated},
					{"a customer", customerA, 403, kit.CodeForbidden},
					{"staff", staff, 0, ""},
				}
			default:
				t.Fatalf("audience %q", rt.Audience)
			}
			for _, at := range attempts {
				a := r.do(rt.Method, path, at.token)
				// A call reached a service if one saw it with this
				// attempt's token; the console's own reads of order and
				// analytics carry the staff's.
				auth := ""
				if at.token != "" {
					auth = "Bearer " + at.token
				}
				reached := false
				for _, s := range r.stubs {
					reached = reached || slices.ContainsFunc(s.take(), func(c call) bool { return c.Auth == auth })
				}
				switch {
				case at.status == 0 && (a.status == 401 || a.status == 403 || (!rt.Own() && !reached)):
					t.Errorf("%s: %d %s, want it let through", at.who, a.status, a.body)
				case at.status != 0 && (a.status != at.status || a.code() != at.code):
					t.Errorf("%s: %d %s, want %d %s", at.who, a.status, a.body, at.status, at.code)
				case at.status != 0 && reached:
					t.Errorf("%s: refused, yet a service saw the call", at.who)
				}
			}
		})
	}
}

var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Any method and path the table does not declare is a JSON 404
// unknown_route that reaches no service, whoever asks: every undeclared
// method of every declared path, every declared path one segment longer,
// paths of no service, and the internal operations.
func TestUndeclaredRoutesAreUnknown(t *testing.T) {
	r := newRig(t, allUpstreams(), Options{})
	declared := http.NewServeMux()
	for _, rt := range catalog.Routes() {
		declared.HandleFunc(rt.Pattern(), func(http.ResponseWriter, *http.Request) {})
	}
	isDeclared := func(method, path string) bool {
		if method == http.MethodHead {
			return false // GET patterns match HEAD; the table declares none
		}
		_, pattern := declared.Handler(httptest.NewRequest(method, path, nil))
		return pattern != ""
	}
	type probe struct{ method, path string }
	var probes []probe
	for _, rt := range catalog.Routes() {
		p := concrete(rt.Path)
		for _, m := range methods {
			probes = append(probes, probe{m, p}, probe{m, p + "/more"})
		}
	}
	for _, p := range []string{"/", "/api", "/api/", "/api/warehouse/items", "/api/product/nowhere", "/healthz", "/readyz", "/metrics", "/health/detail", "/api/gateway/health"} {
		probes = append(probes, probe{"GET", p}, probe{"POST", p})
	}
	for _, m := range catalog.InternalMethods() {
		probes = append(probes, probe{"POST", "/api/" + m.Service + m.Method}, probe{"POST", m.Method})
	}
	n := 0
	for _, p := range probes {
		if isDeclared(p.method, p.path) {
			continue
		}
		n++
		for _, tok := range []string{"", customerA, staff} {
			a := r.do(p.method, p.path, tok)
			if a.status != http.StatusNotFound || (p.method != http.MethodHead && a.code() != CodeUnknownRoute) {
				t.Errorf("%s %s (token %q): %d %s, want 404 %s", p.method, p.path, tok, a.status, a.body, CodeUnknownRoute)
			}
		}
		for name, s := range r.stubs {
			if calls := s.take(); len(calls) > 0 {
				t.Errorf("%s %s reached %s: %+v", p.method, p.path, name, calls)
			}
		}
	}
	if n < 4*len(catalog.Routes()) {
		t.Fatalf("only %d undeclared probes", n)
	}
}

// The internal operations (stock reservations, commits and releases,
// charges, refunds, voids, account and content reads) are gRPC methods on
// the services' grpc port, which the gateway has no client for; their
// paths, asked of the gateway, are unknown routes, not even for staff.
func TestInternalOperationsAreUnreachable(t *testing.T) {
	r := newRig(t, allUpstreams(), Options{})
	ops := catalog.InternalMethods()
	if len(ops) == 0 {
		t.Fatal("the catalog declares no internal operations")
	}
	for _, op := range ops {
		for _, path := range []string{"/api/" + op.Service + op.Method, op.Method} {
			if a := r.do("POST", path, staff); a.status != http.StatusNotFound || a.code() != CodeUnknownRoute {
				t.Errorf("POST %s: %d %s, want 404 %s", path, a.status, a.body, CodeUnknownRoute)
			}
		}
		if calls := r.stubs[op.Service].take(); len(calls) > 0 {
			t.Errorf("%s reached %s: %+v", op.Method, op.Service, calls)
		}
	}
}

// The gateway reaches each upstream over mutual TLS and checks that the
// upstream proves its own identity: a server answering at product's
// address with another service's certificate gets nothing, and the call
// answers 503. A gateway without its identity, or an upstream URL that is
// not https, is refused at start.
func TestUpstreamsMustProveTheirIdentity(t *testing.T) {
	impostor := serveTLS(t, "order", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the impostor was sent %s %s", r.Method, r.URL.Path)
	}))
	api, _ := url.Parse(impostor.URL)
	ops, _ := url.Parse("http://127.0.0.1:1")
	id := kittest.Platform(t).Identity(t, catalog.Gateway)
	g, err := NewGateway(map[string]Upstream{"product": {API: api, Ops: ops}}, tokens, kit.NewMetrics("gateway"), Options{Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	g.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/product/products", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), CodeUpstreamDown) {
		t.Fatalf("a product answering with order's certificate: %d %s", rec.Code, rec.Body)
	}

	plain, _ := url.Parse("http://127.0.0.1:1")
	for name, tt := range map[string]struct {
		ups Upstream
		o   Options
	}{
		"no identity":     {Upstream{API: api, Ops: ops}, Options{}},
		"a plain API URL": {Upstream{API: plain, Ops: ops}, Options{Identity: id}},
	} {
		if _, err := NewGateway(map[string]Upstream{"product": tt.ups}, tokens, kit.NewMetrics("gateway"), tt.o); err == nil {
			t.Errorf("%s: the gateway started", name)
		}
	}
}

// A path segment keeps its escaping on its way to the service, so an id
// can never smuggle an extra segment: videos/x%2Faccess is a title, never
// the internal /videos/x/access.
func TestEscapedSegmentsStayOneSegment(t *testing.T) {
	r := newRig(t, []string{"content"}, Options{})
	if a := r.do("GET", "/api/content/videos/x%2Faccess", ""); a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if calls := r.stubs["content"].take(); len(calls) != 1 || calls[0].Path != "/videos/x%2Faccess" {
		t.Fatalf("content saw %+v, want the path /videos/x%%2Faccess", calls)
	}
}

// A service this gateway has no upstream for (its workload is off) has no
// routes: they answer 404 unknown_route, and the OpenAPI document leaves
// them out.
func TestRoutesOfAbsentServicesAreUnknown(t *testing.T) {
	r := newRig(t, []string{"user"}, Options{})
	if a := r.do("GET", "/api/product/products", ""); a.status != http.StatusNotFound || a.code() != CodeUnknownRoute {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if a := r.do("POST", "/api/user/login", ""); a.status != http.StatusOK {
		t.Fatalf("login: %d %s", a.status, a.body)
	}
	var doc Document
	if err := json.Unmarshal(r.do("GET", "/api/openapi.json", "").body, &doc); err != nil {
		t.Fatal(err)
	}
	own := map[string]bool{}
	for _, rt := range catalog.RoutesOf(catalog.Gateway) {
		own[rt.Path] = true
	}
	for path := range doc.Paths {
		if !strings.HasPrefix(path, "/api/user/") && !own[path] {
			t.Errorf("the document lists %s", path)
		}
	}
	if want := len(catalog.RoutesOf("user")) + len(catalog.RoutesOf(catalog.Gateway)); countOps(doc) != want {
		t.Errorf("%d operations, want %d", countOps(doc), want)
	}
}

func countOps(d Document) int {
	n := 0
	for _, ops := range d.Paths {
		n += len(ops)
	}
	return n
}

// The served OpenAPI document is the table: the same operations, each with
// its audience (x-audience and security), summary, path and query
// parameters, body and success status; and every reference resolves.
func TestOpenAPIIsTheTable(t *testing.T) {
	r := newRig(t, allUpstreams(), Options{})
	a := r.do("GET", "/api/openapi.json", "")
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", a.status, a.header.Get("Content-Type"))
	}
	var doc Document
	if err := json.Unmarshal(a.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || doc.Components.SecuritySchemes[BearerScheme].Scheme != "bearer" {
		t.Fatalf("openapi %q, schemes %+v", doc.OpenAPI, doc.Components.SecuritySchemes)
	}
	if countOps(doc) != len(catalog.Routes()) {
		t.Errorf("%d operations, the table has %d routes", countOps(doc), len(catalog.Routes()))
	}
	for _, rt := range catalog.Routes() {
		op, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		if !ok {
			t.Errorf("%s is missing", rt.Pattern())
			continue
		}
		var path, query []string
		for _, p := range op.Parameters {
			switch p.In {
			case "path":
				path = append(path, p.Name)
			case "query":
				query = append(query, p.Name)
			}
		}
		var wantQuery []string
		for _, q := range rt.Query {
			wantQuery = append(wantQuery, q.Name)
		}
		switch {
		case op.Audience != rt.Audience:
			t.Errorf("%s: x-audience %q, want %q", rt.Pattern(), op.Audience, rt.Audience)
		case !equalSecurity(op.Security, Security(rt.Audience)):
			t.Errorf("%s: security %v", rt.Pattern(), op.Security)
		case op.Summary != rt.Summary || op.OperationID != rt.OperationID():
			t.Errorf("%s: summary %q, id %q", rt.Pattern(), op.Summary, op.OperationID)
		case !slices.Equal(path, rt.PathParams()) || !slices.Equal(query, wantQuery):
			t.Errorf("%s: path params %v, query %v", rt.Pattern(), path, query)
		case (op.RequestBody != nil) != rt.Body:
			t.Errorf("%s: request body %v, want %v", rt.Pattern(), op.RequestBody != nil, rt.Body)
		}
		if _, ok := op.Responses[strconv.Itoa(rt.Status)]; !ok {
			t.Errorf("%s: no %d response", rt.Pattern(), rt.Status)
		}
		for code, resp := range op.Responses {
			if ref, ok := strings.CutPrefix(resp.Ref, "#/components/responses/"); ok {
				if _, ok := doc.Components.Responses[ref]; !ok {
					t.Errorf("%s: response %s refers to a missing %s", rt.Pattern(), code, ref)
				}
			}
		}
	}
}

func equalSecurity(a, b []map[string][]string) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// Public /health names the degraded services and nothing else; the detail,
// with statuses and errors, is on the ops port only.
func TestHealthTellsThePublicNamesOnly(t *testing.T) {
	r := newRig(t, []string{"user", "product", "payment"}, Options{})
	a := r.do("GET", "/health", "")
	if a.status != http.StatusOK || strings.TrimSpace(string(a.body)) != `{"status":"ok"}` {
		t.Fatalf("all ready: %d %s", a.status, a.body)
	}
	r.stubs["product"].ready.Store(false)
	r.stubs["payment"].ops.Close()
	a = r.do("GET", "/health", "")
	if a.status != http.StatusServiceUnavailable || strings.TrimSpace(string(a.body)) != `{"status":"degraded","degraded":["payment","product"]}` {
		t.Fatalf("two down: %d %s", a.status, a.body)
	}
	var d HealthDetail
	a = r.doAt(r.ops, "GET", "/health/detail", "")
	if err := json.Unmarshal(a.body, &d); err != nil || a.status != http.StatusServiceUnavailable {
		t.Fatalf("detail: %d %s", a.status, a.body)
	}
	if d.Services["product"].Status != 503 || d.Services["payment"].Error == "" || !d.Services["user"].Ready {
		t.Fatalf("detail %+v", d)
	}
	if a := r.do("GET", "/health/detail", staff); a.status != http.StatusNotFound {
		t.Fatalf("the detail is routed publicly: %d", a.status)
	}
}

// Anonymous calls share a bucket per client address, which X-Forwarded-For
// names only when the peer is a trusted proxy; calls with a valid token
// have a bucket per user, wherever they come from.
func TestRateLimitsKeyOnUserOrClientAddress(t *testing.T) {
	// One call per bucket, refilled after 1000 s: no test outlasts it.
	limited := Options{RPS: 0.001, Burst: 1}
	trusting := limited
	trusting.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

	t.Run("users have their own buckets", func(t *testing.T) {
		r := newRig(t, []string{"order"}, limited)
		r.t = t
		for _, s := range []struct {
			name, token string
			status      int
		}{
			{"A's first call", customerA, 200},
			{"A's second", customerA, 429},
			{"B, from the same address", customerB, 200},
			{"an anonymous call from the same address", "", 401},
		} {
			if a := r.do("GET", "/api/order/orders", s.token); a.status != s.status {
				t.Fatalf("%s: %d %s, want %d", s.name, a.status, a.body, s.status)
			}
		}
	})
	t.Run("a forwarded address is believed from a trusted proxy only", func(t *testing.T) {
		for _, s := range []struct {
			name string
			o    Options
			xff  []string
			want []int
		}{
			{"untrusted peer: one bucket, whatever it claims", limited, []string{"1.1.1.1", "2.2.2.2"}, []int{200, 429}},
			{"trusted peer: a bucket per client", trusting, []string{"1.1.1.1", "2.2.2.2", "1.1.1.1"}, []int{200, 200, 429}},
			{"the right-most untrusted hop is the client", trusting, []string{"9.9.9.9, 1.1.1.1", "8.8.8.8, 1.1.1.1", "1.1.1.1, 10.0.0.1"}, []int{200, 429, 200}},
			{"IPv6 clients share their /64", trusting, []string{"2001:db8::1", "2001:db8::2", "2001:db8:0:1::1"}, []int{200, 429, 200}},
		} {
			t.Run(s.name, func(t *testing.T) {
				r := newRig(t, []string{"product"}, s.o)
				r.t = t
				for i, xff := range s.xff {
					if a := r.do("GET", "/api/product/products", "", "X-Forwarded-For", xff); a.status != s.want[i] {
						t.Fatalf("X-Forwarded-For %q: %d %s, want %d", xff, a.status, a.body, s.want[i])
					}
				}
			})
		}
	})
}

func TestClientAddress(t *testing.T) {
	c := clientAddr{trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	for _, tt := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"an untrusted peer is the client", "203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7"},
		{"a trusted peer without a header", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"a trusted peer names the client", "10.1.2.3:5000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"past every trusted hop", "10.1.2.3:5000", []string{"6.6.6.6, 198.51.100.9, 10.9.9.9"}, "198.51.100.9"},
		{"over several headers", "10.1.2.3:5000", []string{"6.6.6.6", "198.51.100.9", "10.9.9.9"}, "198.51.100.9"},
		{"all trusted: the farthest", "10.1.2.3:5000", []string{"10.5.5.5, 10.9.9.9"}, "10.5.5.5"},
		{"garbage from a proxy: the last hop named", "10.1.2.3:5000", []string{"6.6.6.6, bogus, 10.9.9.9"}, "10.9.9.9"},
		{"IPv6 peers", "[fd00::1]:5000", []string{"2001:db8::5"}, "2001:db8::5"},
		{"IPv4 in IPv6", "[::ffff:10.1.2.3]:5000", []string{"198.51.100.9"}, "198.51.100.9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := c.of(r); got != tt.want {
				t.Fatalf("client %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := ParseCIDRs("10.0.0.0/8, nonsense"); err == nil {
		t.Error("ParseCIDRs accepted nonsense")
	}
	if p, err := ParseCIDRs(" 10.1.2.3/8 ,, fd00::/8"); err != nil || len(p) != 2 || p[0].String() != "10.0.0.0/8" {
		t.Errorf("ParseCIDRs = %v, %v", p, err)
	}
}

// A down upstream answers 503 and opens its breaker; an oversize chunked
// body, which only the proxy finds out about, is a JSON 413.
func TestUpstreamFailures(t *testing.T) {
	r := newRig(t, []string{"product", "order"}, Options{BreakerFailures: 2, BreakerOpenFor: 1 << 62})
	r.stubs["order"].api.Close()
	for i, want := range []string{"order is unavailable", "order is unavailable", "circuit open"} {
		a := r.do("GET", "/api/order/orders", customerA)
		if a.status != 503 || a.code() != CodeUpstreamDown || !strings.Contains(string(a.body), want) {
			t.Fatalf("call %d: %d %s, want 503 with %q", i, a.status, a.body, want)
		}
	}
	req, _ := http.NewRequest("PUT", r.api+"/api/product/stock/p1", io.MultiReader(strings.NewReader(`{"x":"`), strings.NewReader(strings.Repeat("a", 2<<20))))
	req.Header.Set("Authorization", "Bearer "+staff)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), kit.CodeTooLarge) {
		t.Fatalf("chunked 2 MiB: %d %s", resp.StatusCode, b)
	}
}

// New reads each upstream's ops URL beside its API URL, and the trusted
// proxies; what is wrong is named.
func TestNewReadsItsConfig(t *testing.T) {
	base := map[string]string{
		catalog.EnvTokenKeys: kittest.TokenKeysPEM(), catalog.EnvURL("product"): "https://product",
		catalog.EnvOpsURL("product"): "http://product:8081", catalog.EnvTrustedProxyCIDRs: "10.0.0.0/8",
	}
	if _, err := kit.LoadConfig(catalog.Gateway, Definition.Needs, kit.MapEnv(map[string]string{
		catalog.EnvTokenKeys: kittest.TokenKeysPEM(), catalog.EnvURL("product"): "http://product",
	})); err == nil || !strings.Contains(err.Error(), "PRODUCT_URL") {
		t.Errorf("a plain upstream URL: %v", err)
	}
	for _, tt := range []struct {
		name, key, value, wantErr string
	}{
		{"the operator's env is accepted", "", "", ""},
		{"an upstream without its ops URL", catalog.EnvOpsURL("product"), "", "PRODUCT_OPS_URL is required"},
		{"a malformed ops URL", catalog.EnvOpsURL("product"), "product:8081", "PRODUCT_OPS_URL="},
		{"a malformed CIDR", catalog.EnvTrustedProxyCIDRs, "10.0.0.0/33", catalog.EnvTrustedProxyCIDRs},
		{"the gateway's own ops host is read", catalog.EnvOpsURL(catalog.Gateway), "http://shop-gateway-ops.demo.svc:8081", ""},
		{"a malformed gateway ops host", catalog.EnvOpsURL(catalog.Gateway), "shop-gateway-ops:8081", "GATEWAY_OPS_URL="},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := maps.Clone(base)
			if tt.key != "" {
				env[tt.key] = tt.value
			}
			cfg, err := kit.LoadConfig(catalog.Gateway, Definition.Needs, kit.MapEnv(env))
			if err != nil {
				t.Fatal(err)
			}
			svc, err := New(context.Background(), kit.Deps{Config: cfg, Metrics: kit.NewMetrics("gateway"), Tokens: tokens,
				Identity: kittest.Platform(t).Identity(t, catalog.Gateway)})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				g := svc.(*service).g
				if len(g.upstreams) != 1 || g.upstreams["product"].ops.Host != "product:8081" || len(g.clients.trusted) != 1 {
					t.Fatalf("upstreams %v, trusted %v", g.upstreams, g.clients.trusted)
				}
				if peers := g.console.opts.Peers; (tt.value == "") != (peers == nil) || (peers != nil && peers.String() != tt.value) {
					t.Fatalf("peers %v, want %q", peers, tt.value)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want it to name %q", err, tt.wantErr)
			}
		})
	}
}
