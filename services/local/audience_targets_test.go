package local_test

// The fixtures of TestPublicAPIAudiences, one per route of the table, by
// audience. A route added to catalog.Routes() needs one here.

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/account"
	"github.com/switchboard-dev/switchboard/services/analytics"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/content"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/gateway"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/kit/traces"
	"github.com/switchboard-dev/switchboard/services/order"
	"github.com/switchboard-dev/switchboard/services/payment"
	"github.com/switchboard-dev/switchboard/services/playback"
	"github.com/switchboard-dev/switchboard/services/product"
	"github.com/switchboard-dev/switchboard/services/recommendation"
	"github.com/switchboard-dev/switchboard/services/user"
)

func (w *world) publicTargets() map[string]publicTarget {
	n := 0
	fresh := func(domain string) string {
		n++
		return fmt.Sprintf("public-%d@%s", n, domain)
	}
	items := func(min int) func(t *testing.T, r resp) {
		return func(t *testing.T, r resp) {
			var l struct{ Items []any }
			if r.json(t, &l); len(l.Items) < min {
				t.Errorf("%d items, want at least %d: %s", len(l.Items), min, r.Body)
			}
		}
	}
	token := func(t *testing.T, r resp) {
		var tok struct{ Token string }
		if r.json(t, &tok); tok.Token == "" {
			t.Errorf("no token: %s", r.Body)
		}
	}
	return map[string]publicTarget{
		"GET /health": {check: func(t *testing.T, r resp) {
			if strings.TrimSpace(string(r.Body)) != `{"status":"ok"}` {
				t.Errorf("health %s", r.Body)
			}
		}},
		"GET /api/openapi.json": {check: func(t *testing.T, r resp) {
			var doc struct {
				OpenAPI string         `json:"openapi"`
				Paths   map[string]any `json:"paths"`
			}
			if r.json(t, &doc); doc.OpenAPI == "" || len(doc.Paths) == 0 {
				t.Errorf("openapi %.200s", r.Body)
			}
		}},
		"GET /console": {check: func(t *testing.T, r resp) {
			if !strings.Contains(string(r.Body), "<main") || !strings.Contains(string(r.Body), "/console/assets/console.js") {
				t.Errorf("console page %.300s", r.Body)
			}
		}},
		"GET /console/assets/{name}": {params: ps("name", "console.js"), check: func(t *testing.T, r resp) {
			if !strings.Contains(string(r.Body), "/console/api/events") {
				t.Errorf("console script %.300s", r.Body)
			}
		}},
		"POST /api/user/users": {body: func() any {
			return user.Register{Email: fresh("shop.example.com"), Name: "Public Person", Password: password}
		}, check: func(t *testing.T, r resp) {
			var u user.User
			if r.json(t, &u); u.ID == "" || len(u.Roles) != 0 {
				t.Errorf("signed up %s", r.Body)
			}
		}},
		"POST /api/user/login": {body: func() any {
			return user.Login{Email: w.carol.email, Password: password}
		}, check: token},
		"GET /api/product/products":      {check: items(2)},
		"GET /api/product/products/{id}": {params: ps("id", w.product)},
		"POST /api/account/accounts": {body: func() any {
			return account.SignUp{Email: fresh("tv.example.com"), Password: password, Plan: events.PlanBasic}
		}, check: func(t *testing.T, r resp) {
			var a events.Account
			if r.json(t, &a); a.ID == "" || a.Plan != events.PlanBasic {
				t.Errorf("signed up %s", r.Body)
			}
		}},
		"POST /api/account/login": {body: func() any {
			return account.Login{Email: w.b.accountEmail, Password: password}
		}, check: token},
		"GET /api/content/videos":      {check: items(len(content.Demo))},
		"GET /api/content/videos/{id}": {params: ps("id", titleA)},
		"GET /api/analytics/live": {check: func(t *testing.T, r resp) {
			var l analytics.Live
			if r.json(t, &l); l.Total < 1 {
				t.Errorf("live %s", r.Body)
			}
		}},
		"GET /api/analytics/live/stream":              {},
		"GET /api/analytics/top":                      {query: url.Values{"window": {"1h"}}, check: items(1)},
		"GET /api/recommendation/related/{contentId}": {params: ps("contentId", titleA)},
	}
}

func ps(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func body(v any) func(*customer) any { return func(*customer) any { return v } }

// customerTargets maps every customer route of the table to its calls on
// A's resources.
func (w *world) customerTargets() map[string][]target {
	a := w.a
	// logout signs out a fresh token of the caller's: afterwards that token
	// is refused, in time, and the caller's other token still works.
	logout := func(commerce bool) target {
		who := func(c *customer) (login, email, probe, token string) {
			if commerce {
				return "/api/user/login", c.email, "/api/user/users/" + c.userID, c.userToken
			}
			return "/api/account/login", c.accountEmail, "/api/account/accounts/" + c.accountID, c.accountToken
		}
		return target{
			token: func(t *testing.T, c *customer) string {
				login, email, _, _ := who(c)
				return w.login(t, login, email, password)
			},
			then: func(t *testing.T, c *customer, sent call, _ resp) {
				_, _, probe, token := who(c)
				kittest.Eventually(t, 10*time.Second, "the signed-out token to be refused", func() bool {
					return w.as(t, sent.token).do("GET", probe, nil).Status == http.StatusUnauthorized
				})
				w.as(t, token).must(200, "GET", probe, nil)
			},
		}
	}
	stopStarted := func(t *testing.T, c *customer, _ call, r resp) {
		if r.Status != http.StatusCreated {
			return
		}
		var st playback.Started
		r.json(t, &st)
		w.as(t, c.accountToken).must(204, "DELETE", "/api/playback/sessions/"+st.SessionID, nil)
	}
	mine := func(v func(c *customer) string) func(c *customer) []string {
		return func(c *customer) []string { return []string{v(c)} }
	}
	return map[string][]target{
		"POST /api/user/logout": {logout(true)},
		"GET /api/user/users/{id}": {{params: ps("id", a.userID), refused: 404,
			shows: mine(func(*customer) string { return a.email })}},
		"GET /api/user/users/{id}/points": {{params: ps("id", a.userID), refused: 404,
			then: func(t *testing.T, c *customer, _ call, r resp) {
				var pts struct{ Points int64 }
				if r.json(t, &pts); c == a && pts.Points == 0 {
					t.Errorf("A's points: %s", r.Body)
				}
			}}},
		// B presenting A's Idempotency-Key gets an order of B's own, never
		// A's; A presenting it again gets A's order back.
		"POST /api/order/orders": {{
			header: func(*customer) []string { return []string{kit.HeaderIdempotencyKey, a.key} },
			body:   func(c *customer) any { return w.orderBody(c) },
			shows:  func(c *customer) []string { return []string{order.IDFor(c.userID, a.key), c.address} }}},
		"GET /api/order/orders": {{shows: mine(func(c *customer) string { return c.orderID })}},
		"GET /api/order/orders/{id}": {{params: ps("id", a.orderID), refused: 404,
			shows: mine(func(*customer) string { return a.address })}},
		"GET /api/payment/payments": {{query: url.Values{"orderId": {a.orderID}}, refused: 404,
			shows: mine(func(*customer) string { return a.paymentID })}},
		"GET /api/notification/notifications": {
			{shows: mine(func(c *customer) string { return c.orderID })},
			{query: url.Values{"userId": {a.userID}}, refused: 400, ownerRefused: true},
		},

		"POST /api/account/logout": {logout(false)},
		"GET /api/account/accounts/{id}": {{params: ps("id", a.accountID), refused: 404,
			shows: func(*customer) []string { return []string{a.accountEmail, a.profileID} }}},
		"POST /api/account/accounts/{id}/profiles": {{params: ps("id", a.accountID), refused: 404,
			body: func(c *customer) any { return map[string]string{"name": guestOf(c)} },
			then: func(t *testing.T, c *customer, _ call, _ resp) {
				if c == a {
					return
				}
				var acc events.Account
				w.as(t, a.accountToken).must(200, "GET", "/api/account/accounts/"+a.accountID, nil).json(t, &acc)
				if len(acc.Profiles) != 1 {
					t.Errorf("after B's attempt A's account has profiles %+v", acc.Profiles)
				}
			}}},
		"PUT /api/account/accounts/{id}/subscription": {{params: ps("id", a.accountID), refused: 404,
			// B tries to downgrade A; A keeps the plan A has.
			body: func(c *customer) any {
				if c == a {
					return map[string]string{"plan": events.PlanPremium}
				}
				return map[string]string{"plan": events.PlanBasic}
			},
			then: func(t *testing.T, c *customer, _ call, _ resp) {
				var acc events.Account
				w.as(t, a.accountToken).must(200, "GET", "/api/account/accounts/"+a.accountID, nil).json(t, &acc)
				if acc.Plan != events.PlanPremium {
					t.Errorf("after %s's call A's plan is %s", c.name, acc.Plan)
				}
			}}},

		"GET /api/playback/history": {{shows: func(c *customer) []string {
			if c == a {
				return []string{a.profileID, a.watched}
			}
			return []string{c.watched}
		}}},
		"POST /api/playback/sessions": {
			{body: body(playback.StartRequest{ContentID: titleStart, Region: "eu"}), then: stopStarted},
			// Someone else's profile is refused as a profile of nobody's is.
			{body: body(playback.StartRequest{ContentID: titleStart, Region: "eu", ProfileID: a.profileID}), refused: 400, then: stopStarted},
		},
		"DELETE /api/playback/sessions/{id}": {{params: ps("id", a.spareSessionID), refused: 404}},
		"POST /api/playback/sessions/{id}/heartbeat": {{params: ps("id", a.sessionID), refused: 404,
			body:  body(playback.Heartbeat{PositionSec: 121, BandwidthKbps: 5000, BufferSec: 20}),
			shows: mine(func(*customer) string { return a.sessionID })}},

		"GET /api/analytics/accounts/{id}/watchtime": {{params: ps("id", a.accountID), refused: 404,
			then: func(t *testing.T, c *customer, _ call, r resp) {
				var wt analytics.WatchTime
				if r.json(t, &wt); c == a && (wt.AccountID != a.accountID || wt.WatchedSec <= 0) {
					t.Errorf("A's watch time %+v", wt)
				}
			}}},

		"POST /api/recommendation/clicks": {
			{body: body(recommendation.Click{ContentID: titleB})},
			{body: body(recommendation.Click{AccountID: a.accountID, ContentID: titleB}), refused: 404},
		},
		"GET /api/recommendation/recommendations": {
			{},
			// Not in the table's query parameters, but the service reads
			// it: naming another account must be the 404 of nobody's.
			{query: url.Values{"accountId": {a.accountID}}, refused: 404},
		},
	}
}

// guestOf is the name of the profile c adds to an account in the walk.
func guestOf(c *customer) string { return c.name + "'s guest" }

func (w *world) adminTargets() map[string]adminTarget {
	a := w.a
	productState := func(id string) func(t *testing.T) string {
		return func(t *testing.T) string {
			return string(w.as(t, "").must(200, "GET", "/api/product/products/"+id, nil).Body) +
				string(w.as(t, w.adminUser).must(200, "GET", "/api/product/stock/"+id, nil).Body)
		}
	}
	count := func(path string) func(t *testing.T) string {
		return func(t *testing.T) string {
			var l struct{ Items []any }
			w.as(t, "").must(200, "GET", path, nil).json(t, &l)
			return fmt.Sprint(len(l.Items))
		}
	}
	const newPrice = 31415
	// snapshot checks a console snapshot: the gateway and every upstream
	// (both workloads run) ready, the latest orders, the broker's ORDERS
	// stream.
	gw, _ := catalog.Lookup(catalog.Gateway)
	snapshot := func(t *testing.T, r resp) {
		var s gateway.Snapshot
		if r.json(t, &s); len(s.Services) != 1+len(gw.Upstreams) {
			t.Fatalf("snapshot of %d services, want the gateway and its %d upstreams: %.300s", len(s.Services), len(gw.Upstreams), r.Body)
		}
		for _, svc := range s.Services {
			if svc.Ready != 1 || svc.Instances != 1 || svc.Error != "" {
				t.Errorf("service %+v", svc)
			}
		}
		if len(s.Flow.Orders) == 0 || s.Flow.Error != "" {
			t.Errorf("no latest orders: %s", s.Flow.Error)
		}
		if !slices.ContainsFunc(s.Broker.Streams, func(st gateway.BrokerStream) bool { return st.Name == "ORDERS" }) {
			t.Errorf("no ORDERS stream: %+v", s.Broker)
		}
	}
	return map[string]adminTarget{
		"GET /console/api/snapshot": {check: snapshot},
		"GET /console/api/events":   {check: snapshot},
		"GET /console/api/traces": {check: func(t *testing.T, r resp) {
			var l traces.List
			if r.json(t, &l); l.Traces == nil {
				t.Errorf("traces %s", r.Body)
			}
		}},
		// A trace id that no service recorded: the admin reaches the route, and
		// the trace is not found (recorded traces are read in the gateway's tests
		// and TestAnOrderIsOneTrace).
		"GET /console/api/traces/{traceId}": {params: ps("traceId", "4bf92f3577b34da6a3ce929d0e0e4736"), status: http.StatusNotFound,
			check: func(t *testing.T, r resp) {
				if r.code() != kit.CodeNotFound {
					t.Errorf("trace %s", r.Body)
				}
			}},
		"GET /api/order/admin/orders": {check: func(t *testing.T, r resp) {
			var l struct{ Items []map[string]any }
			r.json(t, &l)
			i := slices.IndexFunc(l.Items, func(o map[string]any) bool { return o["id"] == a.orderID })
			if i < 0 || l.Items[i]["status"] == nil || l.Items[i]["email"] != nil {
				t.Errorf("A's order %s in the staff list: %.500s", a.orderID, r.Body)
			}
		}},
		"POST /api/user/admins": {body: user.GrantAdmin{UserID: w.carol.userID},
			// Carol's next token carries whatever role she has.
			state: func(t *testing.T) string {
				tok := w.login(t, "/api/user/login", w.carol.email, password)
				return fmt.Sprint(w.as(t, tok).do("GET", "/api/product/stock/"+w.spare, nil).Status)
			},
			check: func(t *testing.T, r resp) {
				var u user.User
				if r.json(t, &u); u.ID != w.carol.userID || !slices.Contains(u.Roles, kit.RoleAdmin) {
					t.Fatalf("granted %s", r.Body)
				}
				tok := w.login(t, "/api/user/login", w.carol.email, password)
				w.as(t, tok).must(200, "GET", "/api/product/stock/"+w.spare, nil)
			}},
		"POST /api/product/products": {body: product.NewProduct{Name: "Audience new", Category: "audience", Price: 1200, Stock: 3},
			state: count("/api/product/products"),
			check: func(t *testing.T, r resp) {
				var p product.Product
				if r.json(t, &p); p.ID == "" || p.Name != "Audience new" || p.Price != 1200 {
					t.Fatalf("created %s", r.Body)
				}
				w.as(t, "").must(200, "GET", "/api/product/products/"+p.ID, nil)
			}},
		"PATCH /api/product/products/{id}": {params: ps("id", w.spare), body: map[string]any{"price": newPrice},
			state: productState(w.spare),
			check: func(t *testing.T, r resp) {
				var p product.Product
				w.as(t, "").must(200, "GET", "/api/product/products/"+w.spare, nil).json(t, &p)
				if p.Price != newPrice {
					t.Fatalf("after the patch the price is %d: %s", p.Price, r.Body)
				}
			}},
		"GET /api/product/stock/{id}": {params: ps("id", w.spare),
			check: func(t *testing.T, r resp) {
				var s product.StockLevel
				if r.json(t, &s); s.ProductID != w.spare || s.Available <= 0 || s.Reserved != 0 {
					t.Fatalf("stock %s", r.Body)
				}
			}},
		"PUT /api/product/stock/{id}": {params: ps("id", w.spare), body: map[string]any{"available": 7},
			state: productState(w.spare),
			check: func(t *testing.T, r resp) {
				var s product.StockLevel
				if r.json(t, &s); s.ProductID != w.spare || s.Available != 7 {
					t.Fatalf("stock %s", r.Body)
				}
			}},
		// The staff refund of A's second order; A, its owner, is refused.
		"POST /api/order/orders/{id}/refund": {params: ps("id", a.refundable), body: map[string]any{"restock": true, "reason": "arrived broken"},
			state: func(t *testing.T) string {
				var o events.Order
				w.as(t, a.userToken).must(200, "GET", "/api/order/orders/"+a.refundable, nil).json(t, &o)
				var p events.Payment
				w.as(t, a.userToken).must(200, "GET", "/api/payment/payments?orderId="+a.refundable, nil).json(t, &p)
				return o.Status + " " + p.Status + " " + string(w.as(t, w.adminUser).must(200, "GET", "/api/product/stock/"+w.product, nil).Body)
			},
			check: func(t *testing.T, r resp) {
				var o events.Order
				if r.json(t, &o); o.ID != a.refundable || o.Status != order.Refunded || o.Refund == nil || !o.Refund.Restock {
					t.Fatalf("refunded %s", r.Body)
				}
				var p events.Payment
				w.as(t, a.userToken).must(200, "GET", "/api/payment/payments?orderId="+a.refundable, nil).json(t, &p)
				if p.Status != payment.Refunded {
					t.Fatalf("A sees the payment of the refunded order %+v", p)
				}
			}},
		"POST /api/content/videos": {body: content.Upload{Title: "Audience premiere", Genres: []string{"documentary"}, DurationSec: 60, Regions: []string{"eu"}, MinPlan: events.PlanBasic},
			state: count("/api/content/videos"),
			check: func(t *testing.T, r resp) {
				var v events.Video
				if r.json(t, &v); v.ID == "" || v.Title != "Audience premiere" || v.Status != content.Encoding {
					t.Fatalf("added %s", r.Body)
				}
			}},
		"GET /api/analytics/stats": {
			check: func(t *testing.T, r resp) {
				var s analytics.Stats
				if r.json(t, &s); s.Sessions < 1 || s.Heartbeats < 1 {
					t.Fatalf("stats %s", r.Body)
				}
			}},
		"GET /api/recommendation/experiments": {
			check: func(t *testing.T, r resp) {
				var ex struct{ Items []recommendation.VariantStats }
				if r.json(t, &ex); len(ex.Items) != 2 {
					t.Fatalf("experiments %s", r.Body)
				}
			}},
	}
}
