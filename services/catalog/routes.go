package catalog

import (
	"net/http"
	"slices"
	"strings"
)

// Audience says who may call a public route.
type Audience string

const (
	// Public routes need no token.
	Public Audience = "public"
	// Customer routes need a valid token, and the service serves only the
	// caller's own resources: another user's answers 404, so that its
	// existence does not leak.
	Customer Audience = "customer"
	// Admin routes need a token with the admin role. The gateway refuses
	// any other caller with 403, and the service checks again.
	Admin Audience = "admin"
)

// Audiences lists every audience, from the widest to the narrowest.
var Audiences = []Audience{Public, Customer, Admin}

// Param is a query parameter or a request header of a route.
type Param struct {
	Name        string
	Description string
	Required    bool
}

// Route is one operation of the public API: the gateway routes exactly
// these, and its OpenAPI document and docs/public-api.md are generated from
// them. Anything else answers 404 unknown_route at the gateway.
type Route struct {
	Method string
	// Path is the gateway path, a net/http ServeMux pattern with {name}
	// wildcards: /api/<service><service path>, or the gateway's own.
	Path string
	// Service is the catalog service behind the route; Gateway for the
	// gateway's own routes.
	Service  string
	Audience Audience
	// Summary says what the operation does, in one line.
	Summary string
	Query   []Param
	Headers []Param
	// Body means the operation reads a JSON request body.
	Body bool
	// Status is the status of a successful answer.
	Status int
	// EventStream means the answer is text/event-stream, not JSON.
	EventStream bool
	// Media are the media types of an answer that is neither JSON nor an
	// event stream: the console's page and assets.
	Media []string
}

// Pattern is the route's ServeMux pattern, "METHOD /path".
func (r Route) Pattern() string { return r.Method + " " + r.Path }

// Own reports whether the gateway answers the route itself.
func (r Route) Own() bool { return r.Service == Gateway }

// Prefix is what the gateway strips from the path of a routed request:
// "/api/<service>", or "" for the gateway's own routes.
func (r Route) Prefix() string {
	if r.Own() {
		return ""
	}
	return "/api/" + r.Service
}

// ServicePath is the route's pattern path as the service declares it:
// "/api/order/orders/{id}" → "/orders/{id}".
func (r Route) ServicePath() string { return strings.TrimPrefix(r.Path, r.Prefix()) }

// PathParams names the path's wildcards, in order.
func (r Route) PathParams() []string {
	var out []string
	for _, seg := range strings.Split(r.Path, "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			name = strings.TrimSuffix(strings.TrimSuffix(name, "}"), "...")
			out = append(out, name)
		}
	}
	return out
}

// OperationID names the operation for OpenAPI: the method and the path's
// segments, "GET /api/order/orders/{id}" → "getOrderOrdersById".
func (r Route) OperationID() string {
	var b strings.Builder
	b.WriteString(strings.ToLower(r.Method))
	for _, seg := range strings.Split(strings.TrimPrefix(r.Path, "/api/"), "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			b.WriteString("By")
			seg = strings.TrimSuffix(name, "}")
		}
		for _, word := range strings.FieldsFunc(seg, func(c rune) bool { return c == '-' || c == '.' || c == '_' }) {
			b.WriteString(strings.ToUpper(word[:1]) + word[1:])
		}
	}
	return b.String()
}

// Idempotency-Key is the header a client sets to make a POST safe to retry.
var idempotencyKey = Param{Name: "Idempotency-Key", Required: true,
	Description: "The client's key for this order; a retry with the same key answers with the same order instead of placing another."}

// routes is the public API: the gateway's own, then each service's, in the
// order of services.
var routes = []Route{
	{Method: http.MethodGet, Path: "/health", Service: Gateway, Audience: Public, Status: http.StatusOK,
		Summary: `The platform's health: {"status":"ok"}, or {"status":"degraded","degraded":[service names]} with a 503.`},
	{Method: http.MethodGet, Path: "/api/openapi.json", Service: Gateway, Audience: Public, Status: http.StatusOK,
		Summary: "This API as an OpenAPI 3.1 document."},
	// The console: a page anyone may load, which logs staff in through
	// /api/user/login and reads the admin-only data routes below with the
	// token.
	{Method: http.MethodGet, Path: "/console", Service: Gateway, Audience: Public, Status: http.StatusOK, Media: []string{"text/html"},
		Summary: "The operations console, a web page for staff: it logs in, then reads the console's admin routes."},
	{Method: http.MethodGet, Path: "/console/assets/{name}", Service: Gateway, Audience: Public, Status: http.StatusOK, Media: []string{"text/css", "text/javascript"},
		Summary: "The console's stylesheet and script, embedded in the binary."},
	{Method: http.MethodGet, Path: "/console/api/snapshot", Service: Gateway, Audience: Admin, Status: http.StatusOK,
		Summary: "The console's figures now: each service's readiness, instances, request and error rates, p99 and breaker; orders per second and the last orders; live viewers and top titles; the broker's streams and consumers."},
	{Method: http.MethodGet, Path: "/console/api/events", Service: Gateway, Audience: Admin, Status: http.StatusOK, EventStream: true,
		Summary: "The console's figures, pushed as server-sent events (event: snapshot) every second."},
	{Method: http.MethodGet, Path: "/console/api/traces", Service: Gateway, Audience: Admin, Status: http.StatusOK,
		Summary: "Recent traces, merged by trace id from the trace buffers of every service, newest first.",
		Query: []Param{
			{Name: "limit", Description: "How many traces to list (1 to 100, default 20)."},
			{Name: "orderId", Description: "Only the traces with a span naming this order."},
		}},
	{Method: http.MethodGet, Path: "/console/api/traces/{traceId}", Service: Gateway, Audience: Admin, Status: http.StatusOK,
		Summary: "One trace's spans, gathered from every service's trace buffer, in start order."},

	// Commerce.
	{Method: http.MethodPost, Path: "/api/user/users", Service: "user", Audience: Public, Body: true, Status: http.StatusCreated,
		Summary: "Sign up (commerce)."},
	{Method: http.MethodGet, Path: "/api/user/users/{id}", Service: "user", Audience: Customer, Status: http.StatusOK,
		Summary: "The caller's own profile."},
	{Method: http.MethodGet, Path: "/api/user/users/{id}/points", Service: "user", Audience: Customer, Status: http.StatusOK,
		Summary: "The caller's own loyalty points."},
	{Method: http.MethodPost, Path: "/api/user/login", Service: "user", Audience: Public, Body: true, Status: http.StatusOK,
		Summary: "Log in: a token for the user's e-mail and password."},
	{Method: http.MethodPost, Path: "/api/user/logout", Service: "user", Audience: Customer, Status: http.StatusNoContent,
		Summary: "Sign out: revoke the presented token for the rest of its life."},
	{Method: http.MethodPost, Path: "/api/user/admins", Service: "user", Audience: Admin, Body: true, Status: http.StatusOK,
		Summary: `Grant the admin role to an existing user: {"userId"}.`},

	{Method: http.MethodGet, Path: "/api/product/products", Service: "product", Audience: Public, Status: http.StatusOK,
		Summary: "List products.",
		Query:   []Param{{Name: "category", Description: "Only the products of this category."}}},
	{Method: http.MethodPost, Path: "/api/product/products", Service: "product", Audience: Admin, Body: true, Status: http.StatusCreated,
		Summary: "Create a product."},
	{Method: http.MethodGet, Path: "/api/product/products/{id}", Service: "product", Audience: Public, Status: http.StatusOK,
		Summary: "One product."},
	{Method: http.MethodPatch, Path: "/api/product/products/{id}", Service: "product", Audience: Admin, Body: true, Status: http.StatusOK,
		Summary: "Change a product's name, category or price."},
	{Method: http.MethodGet, Path: "/api/product/stock/{id}", Service: "product", Audience: Admin, Status: http.StatusOK,
		Summary: "A product's stock level: available, reserved and sold."},
	{Method: http.MethodPut, Path: "/api/product/stock/{id}", Service: "product", Audience: Admin, Body: true, Status: http.StatusOK,
		Summary: "Set a product's available stock."},

	{Method: http.MethodPost, Path: "/api/order/orders", Service: "order", Audience: Customer, Body: true, Status: http.StatusCreated,
		Headers: []Param{idempotencyKey},
		Summary: "Place an order: reserve the stock, charge the payment, confirm."},
	{Method: http.MethodGet, Path: "/api/order/orders", Service: "order", Audience: Customer, Status: http.StatusOK,
		Summary: "The caller's own orders."},
	{Method: http.MethodGet, Path: "/api/order/orders/{id}", Service: "order", Audience: Customer, Status: http.StatusOK,
		Summary: "One of the caller's own orders."},
	{Method: http.MethodPost, Path: "/api/order/orders/{id}/refund", Service: "order", Audience: Admin, Body: true, Status: http.StatusOK,
		Summary: `Staff refund {"restock": bool, "reason": string}: the order becomes refunded, the money is returned, the stock restocked or not (202 while some of it is still under way).`},
	{Method: http.MethodGet, Path: "/api/order/admin/orders", Service: "order", Audience: Admin, Status: http.StatusOK,
		Summary: "Every customer's most recently changed orders, newest first, with their status and saga steps (staff; the console's flow).",
		Query:   []Param{{Name: "limit", Description: "How many orders to list (1 to 200, default 20)."}}},

	{Method: http.MethodGet, Path: "/api/payment/payments", Service: "payment", Audience: Customer, Status: http.StatusOK,
		Summary: "The payment of one of the caller's own orders.",
		Query:   []Param{{Name: "orderId", Description: "The order whose payment to show.", Required: true}}},

	{Method: http.MethodGet, Path: "/api/notification/notifications", Service: "notification", Audience: Customer, Status: http.StatusOK,
		Summary: "The caller's own notifications."},

	// Streaming.
	{Method: http.MethodPost, Path: "/api/account/accounts", Service: "account", Audience: Public, Body: true, Status: http.StatusCreated,
		Summary: "Sign up (streaming)."},
	{Method: http.MethodGet, Path: "/api/account/accounts/{id}", Service: "account", Audience: Customer, Status: http.StatusOK,
		Summary: "The caller's own account."},
	{Method: http.MethodPost, Path: "/api/account/accounts/{id}/profiles", Service: "account", Audience: Customer, Body: true, Status: http.StatusCreated,
		Summary: "Add a profile to the caller's own account."},
	{Method: http.MethodPut, Path: "/api/account/accounts/{id}/subscription", Service: "account", Audience: Customer, Body: true, Status: http.StatusOK,
		Summary: "Change the plan of the caller's own account."},
	{Method: http.MethodPost, Path: "/api/account/login", Service: "account", Audience: Public, Body: true, Status: http.StatusOK,
		Summary: "Log in: a token for the account's e-mail and password."},
	{Method: http.MethodPost, Path: "/api/account/logout", Service: "account", Audience: Customer, Status: http.StatusNoContent,
		Summary: "Sign out: revoke the presented token for the rest of its life."},

	{Method: http.MethodGet, Path: "/api/content/videos", Service: "content", Audience: Public, Status: http.StatusOK,
		Summary: "The catalogue.",
		Query:   []Param{{Name: "genre", Description: "Only the titles of this genre."}}},
	{Method: http.MethodPost, Path: "/api/content/videos", Service: "content", Audience: Admin, Body: true, Status: http.StatusCreated,
		Summary: "Add a title; its encoding starts."},
	{Method: http.MethodGet, Path: "/api/content/videos/{id}", Service: "content", Audience: Public, Status: http.StatusOK,
		Summary: "One title."},

	{Method: http.MethodGet, Path: "/api/playback/history", Service: "playback", Audience: Customer, Status: http.StatusOK,
		Summary: "The caller's own viewing history."},
	{Method: http.MethodPost, Path: "/api/playback/sessions", Service: "playback", Audience: Customer, Body: true, Status: http.StatusCreated,
		Summary: "Start a playback session: CDN, manifest and quality."},
	{Method: http.MethodDelete, Path: "/api/playback/sessions/{id}", Service: "playback", Audience: Customer, Status: http.StatusNoContent,
		Summary: "Stop one of the caller's own sessions."},
	{Method: http.MethodPost, Path: "/api/playback/sessions/{id}/heartbeat", Service: "playback", Audience: Customer, Body: true, Status: http.StatusOK,
		Summary: "Report position and bandwidth on one of the caller's own sessions; the quality adapts."},

	{Method: http.MethodGet, Path: "/api/analytics/accounts/{id}/watchtime", Service: "analytics", Audience: Customer, Status: http.StatusOK,
		Summary: "The caller's own watch time."},
	{Method: http.MethodGet, Path: "/api/analytics/live", Service: "analytics", Audience: Public, Status: http.StatusOK,
		Summary: "Live viewers per title."},
	{Method: http.MethodGet, Path: "/api/analytics/live/stream", Service: "analytics", Audience: Public, Status: http.StatusOK, EventStream: true,
		Summary: "Live viewers per title, pushed as server-sent events."},
	{Method: http.MethodGet, Path: "/api/analytics/stats", Service: "analytics", Audience: Admin, Status: http.StatusOK,
		Summary: "Ingest statistics."},
	{Method: http.MethodGet, Path: "/api/analytics/top", Service: "analytics", Audience: Public, Status: http.StatusOK,
		Summary: "The most watched titles.",
		Query: []Param{
			{Name: "window", Description: "How far back to count, a duration such as 5m or 1h."},
			{Name: "limit", Description: "How many titles to list."},
		}},

	{Method: http.MethodPost, Path: "/api/recommendation/clicks", Service: "recommendation", Audience: Customer, Body: true, Status: http.StatusOK,
		Summary: "Record the caller's click on a recommendation."},
	{Method: http.MethodGet, Path: "/api/recommendation/experiments", Service: "recommendation", Audience: Admin, Status: http.StatusOK,
		Summary: "A/B experiment results per variant."},
	{Method: http.MethodGet, Path: "/api/recommendation/recommendations", Service: "recommendation", Audience: Customer, Status: http.StatusOK,
		Summary: "The caller's own recommendations, with their A/B variant.",
		Query: []Param{
			{Name: "accountId", Description: "The caller's own account id; any other answers 404. Defaults to the caller."},
			{Name: "limit", Description: "How many titles to list."},
		}},
	{Method: http.MethodGet, Path: "/api/recommendation/related/{contentId}", Service: "recommendation", Audience: Public, Status: http.StatusOK,
		Summary: "Titles related to one title.",
		Query:   []Param{{Name: "limit", Description: "How many titles to list."}}},
}

// Routes returns every route of the public API, the gateway's own first.
// The slice is a copy.
func Routes() []Route { return slices.Clone(routes) }

// RoutesOf returns the routes a service serves, in table order.
func RoutesOf(service string) []Route {
	return filterRoutes(func(r Route) bool { return r.Service == service })
}

// RoutesFor returns the routes of one audience, in table order: the
// tests that call every customer or admin route walk these.
func RoutesFor(a Audience) []Route {
	return filterRoutes(func(r Route) bool { return r.Audience == a })
}

// LookupRoute returns the route declared with exactly this method and
// pattern path.
func LookupRoute(method, path string) (Route, bool) {
	i := slices.IndexFunc(routes, func(r Route) bool { return r.Method == method && r.Path == path })
	if i < 0 {
		return Route{}, false
	}
	return routes[i], true
}

func filterRoutes(keep func(Route) bool) []Route {
	var out []Route
	for _, r := range routes {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// EnvTrustedProxyCIDRs lists, comma-separated, the proxies in front of the
// gateway whose X-Forwarded-For the gateway believes when it keys its rate
// limits by client address. Empty: it believes none.
const EnvTrustedProxyCIDRs = "TRUSTED_PROXY_CIDRS"
