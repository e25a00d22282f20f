package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/local"
	"github.com/switchboard-dev/switchboard/services/order"
	"github.com/switchboard-dev/switchboard/services/payment"
	"github.com/switchboard-dev/switchboard/services/playback"
	"github.com/switchboard-dev/switchboard/services/product"
)

// world is the fixture of the audience test: a whole local platform (both
// workloads behind one gateway), two customers in each workload, and the
// resources of customer A that B must never reach.
type world struct {
	base string
	a, b *customer
	// carol is a commerce user the admin walk makes an admin.
	carol *customer
	// adminUser and adminAccount are the first admin's tokens, from its
	// login at user and at account.
	adminUser, adminAccount string
	// product is what A and B order; spare is what the admin walk changes.
	product, spare string
}

// customer is one person with an identity in each workload: a commerce user
// and a streaming account, each with its own token.
type customer struct {
	name string
	// Commerce.
	userID, email, fullName, userToken, address string
	// orderID was placed with the Idempotency-Key key and paid by
	// paymentID; refundable is a second confirmed order, for the staff
	// refund.
	key, orderID, paymentID, refundable string
	// Streaming.
	accountID, accountEmail, accountToken string
	profileID, profileName                string
	// sessionID plays on through the test; spareSessionID is there to be
	// stopped by the walk.
	sessionID, spareSessionID string
	// watched is the title the customer's fixture session played.
	watched string
}

// password is every fixture person's password.
const password = "correct-horse-battery"

// Demo titles (content.Demo) the fixtures play: A's main session, B's and
// A's spare session, and the sessions the walk starts.
const (
	titleA     = "big-buck-bunny"
	titleB     = "sintel"
	titleStart = "cosmos-laundromat"
)

func startWorld(t *testing.T) *world {
	t.Helper()
	p, err := local.Start(context.Background(), local.Options{
		Addr:      "127.0.0.1:0",
		Workloads: []catalog.Workload{catalog.Commerce, catalog.Streaming},
		Env: map[string]string{
			"BCRYPT_COST": "4", "RATE_LIMIT_RPS": "1000000",
			// Sessions outlive the test, and stay live, so none expires
			// under a slow run.
			"SESSION_TTL": "10m", "LIVE_STALE_AFTER": "10m",
			// The walk heartbeats a session right after the setup did.
			catalog.EnvHeartbeatMinInterval: "0s",
		},
		ShutdownGrace: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	w := &world{base: p.GatewayURL}
	w.adminUser = w.login(t, "/api/user/login", p.Admin.Email, p.Admin.Password)
	w.adminAccount = w.login(t, "/api/account/login", p.Admin.Email, p.Admin.Password)
	w.product = w.newProduct(t, "Audience lamp", 100)
	w.spare = w.newProduct(t, "Audience spare", 10)

	w.a = w.signUp(t, "ada", "Ada Alpha", "12 Alpha Road, Flat A", events.PlanPremium)
	w.b = w.signUp(t, "bob", "Bob Beta", "34 Beta Street, Flat B", events.PlanBasic)
	w.carol = &customer{name: "carol", email: "carol.gamma@shop.example.com", fullName: "Carol Gamma"}
	w.carol.userID, w.carol.userToken = w.user(t, w.carol.email, w.carol.fullName)

	for _, c := range []*customer{w.a, w.b} {
		c.key = "fixture-" + c.name
		c.orderID = w.order(t, c, c.key)
		var pay events.Payment
		w.as(t, c.userToken).must(200, "GET", "/api/payment/payments?orderId="+c.orderID, nil).json(t, &pay)
		if pay.Status != payment.Completed || pay.ID == "" {
			t.Fatalf("%s's payment %+v", c.name, pay)
		}
		c.paymentID = pay.ID
	}
	w.a.refundable = w.order(t, w.a, "fixture-ada-refundable")

	for _, id := range []string{titleA, titleB, titleStart} {
		kittest.Eventually(t, 20*time.Second, id+" encoded", func() bool {
			var v events.Video
			w.as(t, "").must(200, "GET", "/api/content/videos/"+id, nil).json(t, &v)
			return v.Status == content.Ready
		})
	}
	a := w.as(t, w.a.accountToken)
	w.a.profileName = "Alpha Junior"
	var prof events.Profile
	a.must(201, "POST", "/api/account/accounts/"+w.a.accountID+"/profiles", map[string]string{"name": w.a.profileName}).json(t, &prof)
	w.a.profileID = prof.ID
	w.a.sessionID = w.watch(t, w.a, titleA, w.a.profileID)
	w.a.spareSessionID = w.startSession(t, w.a, titleB, "")
	w.a.watched = titleA
	// B watched something too, and stopped: B's history is not empty.
	w.b.sessionID = w.watch(t, w.b, titleB, "")
	w.b.watched = titleB
	w.as(t, w.b.accountToken).must(204, "DELETE", "/api/playback/sessions/"+w.b.sessionID, nil)

	// What events make: notifications, points, watch time.
	for _, c := range []*customer{w.a, w.b} {
		kittest.Eventually(t, 10*time.Second, c.name+"'s order.confirmed notification", func() bool {
			r := w.as(t, c.userToken).must(200, "GET", "/api/notification/notifications", nil)
			return bytes.Contains(r.Body, []byte(c.orderID))
		})
	}
	kittest.Eventually(t, 10*time.Second, "A's points", func() bool {
		var pts struct{ Points int64 }
		w.as(t, w.a.userToken).must(200, "GET", "/api/user/users/"+w.a.userID+"/points", nil).json(t, &pts)
		return pts.Points > 0
	})
	kittest.Eventually(t, 10*time.Second, "A's watch time", func() bool {
		var wt analytics.WatchTime
		w.as(t, w.a.accountToken).must(200, "GET", "/api/analytics/accounts/"+w.a.accountID+"/watchtime", nil).json(t, &wt)
		return wt.WatchedSec > 0
	})
	return w
}

// as is a client of the gateway presenting token ("" for none).
func (w *world) as(t *testing.T, token string) api { return api{t: t, base: w.base, token: token} }

func (w *world) login(t *testing.T, path, email, pw string) string {
	t.Helper()
	var tok struct{ Token string }
	w.as(t, "").must(200, "POST", path, map[string]string{"email": email, "password": pw}).json(t, &tok)
	if tok.Token == "" {
		t.Fatalf("%s gave no token", path)
	}
	return tok.Token
}

// user signs up a commerce user and logs them in.
func (w *world) user(t *testing.T, email, name string) (id, token string) {
	t.Helper()
	var u struct{ ID string }
	w.as(t, "").must(201, "POST", "/api/user/users", map[string]string{"email": email, "name": name, "password": password}).json(t, &u)
	return u.ID, w.login(t, "/api/user/login", email, password)
}

// signUp makes a customer in both workloads.
func (w *world) signUp(t *testing.T, name, fullName, address, plan string) *customer {
	t.Helper()
	c := &customer{name: name, fullName: fullName, address: address}
	first := strings.ToLower(strings.Fields(fullName)[0])
	last := strings.ToLower(strings.Fields(fullName)[1])
	c.email = first + "." + last + "@shop.example.com"
	c.userID, c.userToken = w.user(t, c.email, fullName)
	c.accountEmail = first + "." + last + "@tv.example.com"
	var acc events.Account
	w.as(t, "").must(201, "POST", "/api/account/accounts", account.SignUp{Email: c.accountEmail, Password: password, Plan: plan}).json(t, &acc)
	c.accountID = acc.ID
	c.accountToken = w.login(t, "/api/account/login", c.accountEmail, password)
	return c
}

func (w *world) newProduct(t *testing.T, name string, stock int64) string {
	t.Helper()
	var p product.Product
	w.as(t, w.adminUser).must(201, "POST", "/api/product/products",
		product.NewProduct{Name: name, Category: "audience", Price: 25000, Stock: stock}).json(t, &p)
	return p.ID
}

// orderBody is an order of one unit of the fixture product.
func (w *world) orderBody(c *customer) map[string]any {
	return map[string]any{
		"items": []map[string]any{{"productId": w.product, "quantity": 1}}, "paymentMethod": "card", "shippingAddress": c.address,
	}
}

// order places a confirmed order for c through the gateway.
func (w *world) order(t *testing.T, c *customer, key string) string {
	t.Helper()
	var o events.Order
	w.as(t, c.userToken).must(201, "POST", "/api/order/orders", w.orderBody(c), kit.HeaderIdempotencyKey, key).json(t, &o)
	if o.Status != order.Confirmed || o.ID != order.IDFor(c.userID, key) {
		t.Fatalf("%s's order %+v", c.name, o)
	}
	return o.ID
}

func (w *world) startSession(t *testing.T, c *customer, title, profile string) string {
	t.Helper()
	var st playback.Started
	w.as(t, c.accountToken).must(201, "POST", "/api/playback/sessions",
		playback.StartRequest{ContentID: title, Region: "eu", ProfileID: profile}).json(t, &st)
	return st.SessionID
}

// watch starts a session and plays a minute of it, so it is in the
// history and the watch time.
func (w *world) watch(t *testing.T, c *customer, title, profile string) string {
	t.Helper()
	id := w.startSession(t, c, title, profile)
	for _, pos := range []float64{1, 61} {
		w.as(t, c.accountToken).must(200, "POST", "/api/playback/sessions/"+id+"/heartbeat",
			playback.Heartbeat{PositionSec: pos, BandwidthKbps: 5000, BufferSec: 20})
	}
	return id
}

// inCommerce reports whether a service belongs to the commerce workload,
// whose people are users; the streaming workload's are accounts.
func inCommerce(service string) bool {
	s, ok := catalog.Lookup(service)
	return ok && slices.Contains(s.Workloads, catalog.Commerce)
}

// tokenFor is c's token for the workload of a route's service.
func (c *customer) tokenFor(r catalog.Route) string {
	if inCommerce(r.Service) {
		return c.userToken
	}
	return c.accountToken
}

// adminFor is the first admin's token for the workload of a route.
func (w *world) adminFor(r catalog.Route) string {
	if inCommerce(r.Service) || r.Own() {
		return w.adminUser
	}
	return w.adminAccount
}

// ids are the identifiers of c's resources.
func (c *customer) ids() []string {
	return nonEmpty(c.userID, c.orderID, c.paymentID, c.refundable, c.accountID, c.profileID, c.sessionID, c.spareSessionID)
}

// secrets are everything of c's that nobody else may read: its resources'
// ids and its personal data.
func (c *customer) secrets() []string {
	return append(c.ids(), nonEmpty(c.email, c.fullName, c.address, c.accountEmail, c.profileName)...)
}

func nonEmpty(vs ...string) []string {
	var out []string
	for _, v := range vs {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// call is one request through the gateway.
type call struct {
	method, path string
	body         []byte
	header       []string
	token        string
}

func (c call) String() string { return c.method + " " + c.path }

// text is everything the caller sent: what it sent, it knew already.
func (c call) text() string {
	return c.path + "\x00" + string(c.body) + "\x00" + strings.Join(c.header, "\x00")
}

func (c call) send(t *testing.T, base string) resp {
	t.Helper()
	var body any
	if c.body != nil {
		body = c.body
	}
	return api{t: t, base: base, token: c.token}.do(c.method, c.path, body, c.header...)
}

// replace swaps each of olds for a fresh id in the path and body, so the
// call names resources that do not exist.
func (c call) replace(olds []string) call {
	out := c
	body := string(c.body)
	for _, old := range olds {
		fresh := kit.NewID()
		out.path = strings.ReplaceAll(out.path, url.PathEscape(old), fresh)
		out.path = strings.ReplaceAll(out.path, url.QueryEscape(old), fresh)
		body = strings.ReplaceAll(body, old, fresh)
	}
	if c.body != nil {
		out.body = []byte(body)
	}
	return out
}

// names reports whether the call names any of ids.
func (c call) names(ids []string) bool {
	return slices.ContainsFunc(ids, func(id string) bool { return strings.Contains(c.text(), id) })
}

// leaks lists the secrets an answer holds that its caller did not send.
func leaks(body []byte, secrets []string, sent call) []string {
	var out []string
	for _, s := range secrets {
		if bytes.Contains(body, []byte(s)) && !strings.Contains(sent.text(), s) {
			out = append(out, s)
		}
	}
	return out
}

// request fills a route of the table: its path parameters from params, its
// query, its body and headers. It fails when the fixture and the route
// disagree: a wildcard without a value or a value without a wildcard, a
// required query parameter or header missing, a body the route does not
// read or a body it reads missing.
func request(t *testing.T, r catalog.Route, params map[string]string, query url.Values, body any, header []string) call {
	t.Helper()
	path := r.Path
	for _, name := range r.PathParams() {
		v, ok := params[name]
		if !ok {
			t.Fatalf("%s: the fixture has no value for {%s}", r.Pattern(), name)
		}
		path = strings.Replace(path, "{"+name+"...}", url.PathEscape(v), 1)
		path = strings.Replace(path, "{"+name+"}", url.PathEscape(v), 1)
	}
	if len(params) != len(r.PathParams()) {
		t.Fatalf("%s: the fixture fills %v, the route has %v", r.Pattern(), params, r.PathParams())
	}
	for _, q := range r.Query {
		if q.Required && !query.Has(q.Name) {
			t.Fatalf("%s: the fixture leaves out the required query parameter %s", r.Pattern(), q.Name)
		}
	}
	for _, h := range r.Headers {
		if h.Required && !slices.Contains(header, h.Name) {
			t.Fatalf("%s: the fixture leaves out the required header %s", r.Pattern(), h.Name)
		}
	}
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	c := call{method: r.Method, path: path, header: header}
	switch {
	case r.Body && body == nil:
		t.Fatalf("%s reads a body; the fixture gives none", r.Pattern())
	case !r.Body && body != nil:
		t.Fatalf("%s reads no body; the fixture gives one", r.Pattern())
	case body != nil:
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		c.body = b
	}
	return c
}

// errorOf is the error an answer carries: code and field.
func errorOf(r resp) string {
	var b kit.ErrorBody
	_ = json.Unmarshal(r.Body, &b)
	return fmt.Sprintf("%s(%s)", b.Error.Code, b.Error.Field)
}
