package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	paymentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/payment/v1"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/gateway"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/local"
	"github.com/switchboard-dev/switchboard/services/order"
)

// paymentProxy sits between order and payment so a test can hold a charge
// in flight (to kill order mid-saga) while payment itself stays honest. It
// is a gRPC server of payment's API with a payment certificate from the
// platform's CA (order checks that much), forwarding every call to the
// real payment as order.
type paymentProxy struct {
	paymentv1.UnimplementedPaymentsServer
	next    paymentv1.PaymentsClient
	hold    atomic.Bool
	arrived chan struct{}
	release chan struct{}
}

func (p *paymentProxy) Charge(ctx context.Context, req *paymentv1.ChargeRequest) (*paymentv1.ChargeResponse, error) {
	if p.hold.Load() {
		select {
		case p.arrived <- struct{}{}:
		default:
		}
		<-p.release
		// The charge reaches payment even though order is gone by now:
		// money taken, order not told.
		ctx = context.WithoutCancel(ctx)
	}
	return p.next.Charge(ctx, req)
}

func (p *paymentProxy) GetStatus(ctx context.Context, req *paymentv1.GetStatusRequest) (*paymentv1.GetStatusResponse, error) {
	return p.next.GetStatus(ctx, req)
}

func (p *paymentProxy) Refund(ctx context.Context, req *paymentv1.RefundRequest) (*paymentv1.RefundResponse, error) {
	return p.next.Refund(ctx, req)
}

func (p *paymentProxy) Void(ctx context.Context, req *paymentv1.VoidRequest) (*paymentv1.VoidResponse, error) {
	return p.next.Void(ctx, req)
}

// serve serves the proxy on ln, as payment, forwarding to p's payment.
func (proxy *paymentProxy) serve(t *testing.T, p *local.Platform, ln net.Listener) {
	t.Helper()
	asPayment, err := p.Identity("payment")
	if err != nil {
		t.Fatal(err)
	}
	asOrder, err := p.Identity("order")
	if err != nil {
		t.Fatal(err)
	}
	c, err := kit.NewGRPCClient("payment", p.GRPCAddrs["payment"], asOrder, kit.NewMetrics("proxy"),
		kit.GRPCClientOptions{ClientOptions: kit.ClientOptions{Attempts: 1, BreakerFailures: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	proxy.next = paymentv1.NewPaymentsClient(c)
	srv, err := kit.NewGRPCServer(asPayment, kit.NewMetrics("proxy"), kit.GRPCPolicyFor("payment"), nil)
	if err != nil {
		t.Fatal(err)
	}
	paymentv1.RegisterPaymentsServer(srv, proxy)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
}

type api struct {
	t     *testing.T
	base  string
	token string
}

type resp struct {
	Status int
	Body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

func (r resp) code() string {
	var b kit.ErrorBody
	_ = json.Unmarshal(r.Body, &b)
	return b.Error.Code
}

func (a api) do(method, path string, body any, hdr ...string) resp {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, b}
}

func (a api) must(status int, method, path string, body any, hdr ...string) resp {
	a.t.Helper()
	r := a.do(method, path, body, hdr...)
	if r.Status != status {
		a.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, status, r.Body)
	}
	return r
}

type stockLevel struct{ Available, Reserved int64 }

// staffToken carries the admin role that stock levels and new products
// need at the gateway.
var staffToken string

func (a api) staff() api {
	a.token = staffToken
	return a
}

func (a api) stock(id string) stockLevel {
	a.t.Helper()
	var s stockLevel
	a.staff().must(200, "GET", "/api/product/stock/"+id, nil).json(a.t, &s)
	return s
}

func (a api) placeOrder(key, product string, qty int, method string) resp {
	a.t.Helper()
	return a.do("POST", "/api/order/orders", map[string]any{
		"items": []map[string]any{{"productId": product, "quantity": qty}}, "paymentMethod": method, "shippingAddress": "1 Main St",
	}, kit.HeaderIdempotencyKey, key)
}

func (a api) newProduct(stock int) string {
	a.t.Helper()
	var p struct{ ID string }
	a.staff().must(201, "POST", "/api/product/products", map[string]any{"name": "Limited edition", "category": "test", "price": 25000, "stock": stock}).json(a.t, &p)
	return p.ID
}

func TestEndToEndThroughTheGateway(t *testing.T) {
	proxy := &paymentProxy{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	p, err := local.Start(ctx, local.Options{
		Addr:      "127.0.0.1:0",
		Workloads: []catalog.Workload{catalog.Commerce},
		Env: map[string]string{
			"BCRYPT_COST": "4", "SAGA_LEASE": "1s", "SAGA_SWEEP": "200ms",
			"BREAKER_OPEN_FOR": "500ms", "RATE_LIMIT_RPS": "10000", "UPSTREAM_TIMEOUT": "2s",
		},
		ServiceEnv:    map[string]map[string]string{"order": {catalog.EnvGRPC("payment"): proxyLn.Addr().String()}},
		ShutdownGrace: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	proxy.serve(t, p, proxyLn)
	staffToken = kittest.Issue(t, p.Signer, "e2e-staff", kit.RoleAdmin)

	anon := api{t: t, base: p.GatewayURL}
	var a api
	var userID string

	t.Run("register and login", func(t *testing.T) {
		anon := api{t: t, base: p.GatewayURL}
		body := map[string]string{"email": "ada@example.com", "name": "Ada", "password": "correct-horse"}
		var u struct{ ID string }
		anon.must(201, "POST", "/api/user/users", body).json(t, &u)
		if r := anon.must(409, "POST", "/api/user/users", body); r.code() != "email_taken" {
			t.Errorf("duplicate email: code %q", r.code())
		}
		anon.must(400, "POST", "/api/user/users", map[string]string{"email": "not-an-email", "name": "A", "password": "correct-horse"})
		anon.must(400, "POST", "/api/user/users", map[string]string{"email": "bob@example.com", "name": "Bob", "password": "short"})
		anon.must(401, "POST", "/api/user/login", map[string]string{"email": "ada@example.com", "password": "wrong-password"})
		var tok struct{ Token string }
		anon.must(200, "POST", "/api/user/login", map[string]string{"email": "ada@example.com", "password": "correct-horse"}).json(t, &tok)
		a = api{t: t, base: p.GatewayURL, token: tok.Token}
		userID = u.ID
		a.must(200, "GET", "/api/user/users/"+userID, nil)
	})
	if a.token == "" {
		t.Fatal("no token; later steps need one")
	}

	var confirmedID string
	t.Run("a confirmed order decreases stock, credits points and records a notification", func(t *testing.T) {
		a := api{t: t, base: a.base, token: a.token}
		before := a.stock("monitor")
		var o events.Order
		a.must(201, "POST", "/api/order/orders", map[string]any{
			"items": []map[string]any{{"productId": "monitor", "quantity": 1}}, "paymentMethod": "card", "shippingAddress": "1 Main St",
		}, kit.HeaderIdempotencyKey, "first").json(t, &o)
		if o.Status != order.Confirmed || o.Total != 39900 || len(o.History) != 2 {
			t.Fatalf("order %+v", o)
		}
		confirmedID = o.ID
		if after := a.stock("monitor"); after.Available != before.Available-1 || after.Reserved != 0 {
			t.Fatalf("stock %+v → %+v", before, after)
		}
		kittest.Eventually(t, 10*time.Second, "3 points", func() bool {
			var pts struct{ Points int64 }
			a.must(200, "GET", "/api/user/users/"+userID+"/points", nil).json(t, &pts)
			return pts.Points == 39900/10000
		})
		kittest.Eventually(t, 10*time.Second, "an order.confirmed notification", func() bool {
			return countNotifications(a, catalog.OrderConfirmed) == 1
		})
		// The same Idempotency-Key answers with the same order.
		var again events.Order
		a.must(201, "POST", "/api/order/orders", map[string]any{
			"items": []map[string]any{{"productId": "monitor", "quantity": 1}}, "paymentMethod": "card", "shippingAddress": "1 Main St",
		}, kit.HeaderIdempotencyKey, "first").json(t, &again)
		if again.ID != o.ID || a.stock("monitor").Available != before.Available-1 {
			t.Fatal("a retried POST placed a second order")
		}
		var list struct{ Items []events.Order }
		a.must(200, "GET", "/api/order/orders", nil).json(t, &list)
		if len(list.Items) != 1 {
			t.Fatalf("orders list has %d items", len(list.Items))
		}
	})

	t.Run("an out-of-stock order is a 409 and leaves stock unchanged", func(t *testing.T) {
		a := api{t: t, base: a.base, token: a.token}
		before := a.stock("monitor")
		r := a.placeOrder("too-many", "monitor", 1000, "card")
		if r.Status != 409 || r.code() != "out_of_stock" {
			t.Fatalf("status %d code %q: %s", r.Status, r.code(), r.Body)
		}
		if after := a.stock("monitor"); after != before {
			t.Fatalf("stock %+v → %+v", before, after)
		}
		var o events.Order
		a.must(200, "GET", "/api/order/orders/"+order.IDFor(userID, "too-many"), nil).json(t, &o)
		if o.Status != order.Cancelled {
			t.Fatalf("order status %s", o.Status)
		}
	})

	t.Run("a declined payment is a 402 with stock restored and the order cancelled", func(t *testing.T) {
		a := api{t: t, base: a.base, token: a.token}
		before := a.stock("keyboard")
		r := a.placeOrder("declined", "keyboard", 2, "card_declined")
		if r.Status != 402 || r.code() != "payment_declined" {
			t.Fatalf("status %d code %q: %s", r.Status, r.code(), r.Body)
		}
		if after := a.stock("keyboard"); after != before {
			t.Fatalf("stock %+v → %+v", before, after)
		}
		var o events.Order
		a.must(200, "GET", "/api/order/orders/"+order.IDFor(userID, "declined"), nil).json(t, &o)
		if o.Status != order.Cancelled {
			t.Fatalf("order status %s", o.Status)
		}
	})

	t.Run("order.confirmed delivered twice gives one notification and one points credit", func(t *testing.T) {
		a := api{t: t, base: a.base, token: a.token}
		nc, err := nats.Connect(p.NATSURL, nats.UserInfo(p.BrokerUser, p.BrokerPassword))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		stream, _ := js.Stream(ctx, "ORDERS")
		msg, err := stream.GetLastMsgForSubject(ctx, catalog.OrderConfirmed)
		if err != nil {
			t.Fatal(err)
		}
		var ev kit.Event
		_ = json.Unmarshal(msg.Data, &ev)
		if ev.ID != kit.EventID(catalog.OrderConfirmed, confirmedID) {
			t.Fatalf("last order.confirmed is %s", ev.ID)
		}
		// A different Nats-Msg-Id gets past JetStream's dedupe window, as a
		// republish hours later would: the consumers must drop it themselves.
		ack, err := js.Publish(ctx, catalog.OrderConfirmed, msg.Data, jetstream.WithMsgID(ev.ID+"-redelivered"))
		if err != nil || ack.Duplicate {
			t.Fatalf("republish: %v %+v", err, ack)
		}
		for _, durable := range []string{"user-points", "notification-order-confirmed"} {
			kittest.Eventually(t, 10*time.Second, durable+" to ack the copy", func() bool {
				c, err := js.Consumer(ctx, "ORDERS", durable)
				if err != nil {
					return false
				}
				info, err := c.Info(ctx)
				return err == nil && info.AckFloor.Stream >= ack.Sequence
			})
		}
		var pts struct{ Points int64 }
		a.must(200, "GET", "/api/user/users/"+userID+"/points", nil).json(t, &pts)
		if pts.Points != 3 {
			t.Errorf("points = %d, want 3", pts.Points)
		}
		if n := countNotifications(a, catalog.OrderConfirmed); n != 1 {
			t.Errorf("%d order.confirmed notifications, want 1", n)
		}
	})

	t.Run("50 concurrent orders racing for 10 units: exactly 10 succeed", func(t *testing.T) {
		a := api{t: t, base: a.base, token: a.token}
		id := a.newProduct(10)
		var ok, outOfStock atomic.Int32
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				r := a.placeOrder(fmt.Sprintf("race-%d", i), id, 1, "card")
				switch {
				case r.Status == 201:
					ok.Add(1)
				case r.Status == 409 && r.code() == "out_of_stock":
					outOfStock.Add(1)
				default:
					t.Errorf("order %d: %d %s", i, r.Status, r.Body)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 10 || outOfStock.Load() != 40 {
			t.Fatalf("%d confirmed, %d out of stock; want 10 and 40", ok.Load(), outOfStock.Load())
		}
		if s := a.stock(id); s.Available != 0 || s.Reserved != 0 {
			t.Fatalf("stock %+v, want 0 available and 0 reserved", s)
		}
	})

	t.Run("a customer sees only their own orders, payments and notifications", func(t *testing.T) {
		a := api{t: t, base: a.base, token: a.token}
		_, bob := signUp(t, p.GatewayURL, "bob@example.com")
		bob.must(404, "GET", "/api/order/orders/"+confirmedID, nil)
		var list struct{ Items []events.Order }
		bob.must(200, "GET", "/api/order/orders", nil).json(t, &list)
		if len(list.Items) != 0 {
			t.Fatalf("Bob lists %d orders", len(list.Items))
		}
		var pay events.Payment
		a.must(200, "GET", "/api/payment/payments?orderId="+confirmedID, nil).json(t, &pay)
		if pay.OrderID != confirmedID || pay.UserID != userID || pay.Status != "completed" {
			t.Fatalf("Ada's payment %+v", pay)
		}
		bob.must(404, "GET", "/api/payment/payments?orderId="+confirmedID, nil)
		if n := countNotifications(bob, catalog.OrderConfirmed); n != 0 {
			t.Fatalf("Bob sees %d order.confirmed notifications", n)
		}
		if r := bob.must(400, "GET", "/api/notification/notifications?userId="+userID, nil); r.code() != kit.CodeInvalid {
			t.Fatalf("naming Ada's userId: %s", r.Body)
		}
	})

	// The scenario of issue 10: with nothing but their own token, a customer
	// refunded their own confirmed order through payment and kept the goods,
	// charged anyone, and set or reserved stock. Each is now refused, by the
	// gateway's route table and by the service itself, and nothing moved.
	t.Run("a customer can no longer refund, charge, or touch stock and products", func(t *testing.T) {
		a := api{t: t, base: a.base, token: a.token}
		before, price := a.stock("keyboard"), productPrice(a, "keyboard")
		attempts := []struct {
			name, method, path string
			body               any
			refused            []int
		}{
			{"refund their own payment", "POST", "/api/payment/payments/pay_" + confirmedID + "/refund", nil, []int{403, 404}},
			{"refund their own order", "POST", "/api/order/orders/" + confirmedID + "/refund", map[string]any{"restock": false, "reason": "mine"}, []int{403}},
			{"charge another user", "POST", "/api/payment/payments", map[string]any{"orderId": "x1", "userId": "someone", "amount": 100, "method": "card"}, []int{403, 404}},
			{"set stock", "PUT", "/api/product/stock/keyboard", map[string]any{"available": 999999}, []int{403}},
			{"read stock", "GET", "/api/product/stock/keyboard", nil, []int{403}},
			{"reserve stock outside an order", "POST", "/api/product/stock/keyboard/reservations", map[string]any{"orderId": "x2", "quantity": 5}, []int{403, 404}},
			{"restock outside a refund", "POST", "/api/product/stock/keyboard/restocks", map[string]any{"orderId": confirmedID, "quantity": 1}, []int{403, 404}},
			{"create a product", "POST", "/api/product/products", map[string]any{"name": "Free", "category": "x", "price": 1, "stock": 1}, []int{403}},
			{"change a price", "PATCH", "/api/product/products/keyboard", map[string]any{"price": 1}, []int{403}},
		}
		for _, tt := range attempts {
			t.Run(tt.name, func(t *testing.T) {
				r := api{t: t, base: a.base, token: a.token}.do(tt.method, tt.path, tt.body)
				if !slices.Contains(tt.refused, r.Status) {
					t.Fatalf("status %d, want one of %v: %s", r.Status, tt.refused, r.Body)
				}
			})
		}
		var o events.Order
		a.must(200, "GET", "/api/order/orders/"+confirmedID, nil).json(t, &o)
		var pay events.Payment
		a.must(200, "GET", "/api/payment/payments?orderId="+confirmedID, nil).json(t, &pay)
		if o.Status != order.Confirmed || pay.Status != "completed" {
			t.Fatalf("order %s, payment %s", o.Status, pay.Status)
		}
		if after := a.stock("keyboard"); after != before || productPrice(a, "keyboard") != price {
			t.Fatalf("stock %+v → %+v, price %d → %d", before, after, price, productPrice(a, "keyboard"))
		}
	})

	t.Run("a staff refund returns the money, and the goods when staff say so", func(t *testing.T) {
		a := api{t: t, base: a.base, token: a.token}
		staff := a.staff()
		id := a.newProduct(5)
		refund := func(key string, qty int, restock bool) events.Order {
			t.Helper()
			var placed events.Order
			a.must(201, "POST", "/api/order/orders", map[string]any{
				"items": []map[string]any{{"productId": id, "quantity": qty}}, "paymentMethod": "card", "shippingAddress": "1 Main St",
			}, kit.HeaderIdempotencyKey, key).json(t, &placed)
			var o events.Order
			staff.must(200, "POST", "/api/order/orders/"+placed.ID+"/refund", map[string]any{"restock": restock, "reason": "arrived broken"}).json(t, &o)
			if o.ID != placed.ID || o.Status != order.Refunded || o.Refund == nil || o.Refund.Restock != restock {
				t.Fatalf("refunded order %+v", o)
			}
			a.must(200, "GET", "/api/order/orders/"+o.ID, nil).json(t, &o)
			var pay events.Payment
			a.must(200, "GET", "/api/payment/payments?orderId="+o.ID, nil).json(t, &pay)
			if o.Status != order.Refunded || pay.Status != "refunded" || pay.Amount != o.Total {
				t.Fatalf("the customer sees order %s, payment %+v", o.Status, pay)
			}
			return o
		}

		back := refund("refund-restock", 2, true)
		if s := sold(a, id); s != (soldLevel{Available: 5, Sold: 2, Restocked: 2}) {
			t.Fatalf("after a refund with restock, stock %+v", s)
		}
		// Asked again: the same refunded order, nothing moves twice.
		var again events.Order
		staff.must(200, "POST", "/api/order/orders/"+back.ID+"/refund", map[string]any{"restock": true, "reason": "again"}).json(t, &again)
		if again.Status != order.Refunded || sold(a, id) != (soldLevel{Available: 5, Sold: 2, Restocked: 2}) {
			t.Fatalf("a second refund: %s, stock %+v", again.Status, sold(a, id))
		}

		refund("refund-keep", 1, false)
		if s := sold(a, id); s != (soldLevel{Available: 4, Sold: 3, Restocked: 2}) {
			t.Fatalf("after a refund without restock, stock %+v", s)
		}

		declined := order.IDFor(userID, "declined")
		if r := staff.must(409, "POST", "/api/order/orders/"+declined+"/refund", map[string]any{"restock": true, "reason": "x"}); r.code() != order.CodeNotRefundable {
			t.Fatalf("refunding a cancelled order: %s", r.Body)
		}
		staff.must(404, "POST", "/api/order/orders/0000000000000000beef/refund", map[string]any{"restock": true, "reason": "x"})
		kittest.Eventually(t, 10*time.Second, "two order.refunded notifications", func() bool {
			return countNotifications(a, catalog.OrderRefunded) == 2
		})
	})

	t.Run("payment down: the breaker opens, 503s come fast and nothing stays reserved", func(t *testing.T) {
		a := api{t: t, base: a.base, token: a.token}
		before := a.stock("teapot")
		if err := p.Stop("payment"); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			r := a.placeOrder(fmt.Sprintf("down-%d", i), "teapot", 1, "card")
			if r.Status != 503 || r.code() != kit.CodeUnavailable {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			if strings.Contains(string(r.Body), "circuit open") {
				break // failed fast, before reserving anything
			}
			if i == 10 {
				t.Fatal("the payment breaker never opened")
			}
		}
		if !strings.Contains(metrics(t, p.OpsURLs["order"]), `switchboard_breaker_state{service="order",upstream="payment"} 2`) {
			t.Error("order's metrics do not show the payment breaker open")
		}
		if after := a.stock("teapot"); after != before {
			t.Fatalf("stock %+v → %+v", before, after)
		}
		if err := p.Restart(ctx, "payment"); err != nil {
			t.Fatal(err)
		}
		// Once the breaker half-opens, a probe goes through and orders flow.
		kittest.Eventually(t, 15*time.Second, "orders to be confirmed again", func() bool {
			return a.placeOrder("recovered-"+kit.NewID(), "teapot", 1, "card").Status == 201
		})
	})

	t.Run("order killed mid-saga and restarted ends consistent", func(t *testing.T) {
		a := api{t: t, base: a.base, token: a.token}
		id := a.newProduct(5)
		proxy.hold.Store(true)
		done := make(chan resp, 1)
		go func() { done <- a.placeOrder("crash", id, 2, "card") }()
		select {
		case <-proxy.arrived:
		case <-time.After(15 * time.Second):
			t.Fatal("the charge never reached payment")
		}
		if s := a.stock(id); s.Reserved != 2 {
			t.Fatalf("mid-saga stock %+v, want 2 reserved", s)
		}
		_ = p.Stop("order") // killed with the charge in flight
		proxy.hold.Store(false)
		close(proxy.release)
		<-done // the client saw the order service go away
		if err := p.Restart(ctx, "order"); err != nil {
			t.Fatal(err)
		}
		var o events.Order
		kittest.Eventually(t, 20*time.Second, "the resumed saga to finish", func() bool {
			a.must(200, "GET", "/api/order/orders/"+order.IDFor(userID, "crash"), nil).json(t, &o)
			return o.Status != order.Pending
		})
		s := a.stock(id)
		switch o.Status {
		case order.Confirmed:
			if s.Available != 3 || s.Reserved != 0 {
				t.Fatalf("confirmed, but stock %+v", s)
			}
		case order.Cancelled:
			if s.Available != 5 || s.Reserved != 0 {
				t.Fatalf("cancelled, but stock %+v", s)
			}
		}
	})

	t.Run("malformed JSON, oversize bodies and missing tokens get the right 4xx", func(t *testing.T) {
		a := api{t: t, base: a.base, token: a.token}
		anon := api{t: t, base: anon.base}
		big := `{"items":[],"shippingAddress":"` + strings.Repeat("x", 2<<20) + `"}`
		tests := []struct {
			name   string
			api    api
			method string
			path   string
			body   any
			status int
			code   string
		}{
			{"malformed JSON to order", a, "POST", "/api/order/orders", `{"items":`, 400, kit.CodeMalformed},
			{"malformed JSON to sign-up", anon, "POST", "/api/user/users", `nope`, 400, kit.CodeMalformed},
			{"a wrong type names its field", a, "POST", "/api/order/orders", `{"items":[{"productId":"keyboard","quantity":"two"}]}`, 400, kit.CodeInvalid},
			{"an oversize body", a, "POST", "/api/order/orders", big, 413, kit.CodeTooLarge},
			{"no token", anon, "GET", "/api/order/orders", nil, 401, kit.CodeUnauthenticated},
			{"a forged token", api{t: t, base: a.base, token: a.token + "x"}, "GET", "/api/order/orders", nil, 401, kit.CodeUnauthenticated},
			{"an unknown service", a, "GET", "/api/warehouse/items", nil, 404, gateway.CodeUnknownRoute},
			{"an unknown route", a, "GET", "/api/product/nowhere", nil, 404, gateway.CodeUnknownRoute},
			{"a wrong method", a, "DELETE", "/api/product/products", nil, 404, gateway.CodeUnknownRoute},
			{"an internal operation", a.staff(), "POST", "/api/product/stock/monitor/reservations", map[string]any{"orderId": "o", "quantity": 1}, 404, gateway.CodeUnknownRoute},
			{"an admin route with a customer's token", a, "PUT", "/api/product/stock/monitor", map[string]any{"available": 999999}, 403, kit.CodeForbidden},
			{"someone else's account is the 404 of a missing one", a, "GET", "/api/user/users/someone-else", nil, 404, kit.CodeNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.api.t = t
				r := tt.api.do(tt.method, tt.path, tt.body, kit.HeaderIdempotencyKey, "bad-"+kit.NewID())
				if r.Status != tt.status || r.code() != tt.code {
					t.Fatalf("status %d code %q, want %d %q: %.200s", r.Status, r.code(), tt.status, tt.code, r.Body)
				}
			})
		}
	})

	t.Run("the gateway aggregates health", func(t *testing.T) {
		if r := (api{t: t, base: p.GatewayURL}).must(200, "GET", "/health", nil); strings.TrimSpace(string(r.Body)) != `{"status":"ok"}` {
			t.Fatalf("public health %s", r.Body)
		}
		// The detail is on the gateway's ops port, which nothing routes
		// publicly.
		var d gateway.HealthDetail
		api{t: t, base: p.OpsURLs[catalog.Gateway]}.must(200, "GET", "/health/detail", nil).json(t, &d)
		if d.Status != "ok" || len(d.Services) != 5 {
			t.Fatalf("health detail %+v", d)
		}
	})
}

// signUp registers a customer through the gateway and logs them in.
func signUp(t *testing.T, base, email string) (string, api) {
	t.Helper()
	anon := api{t: t, base: base}
	var u struct{ ID string }
	anon.must(201, "POST", "/api/user/users", map[string]string{"email": email, "name": "Customer", "password": "correct-horse"}).json(t, &u)
	var tok struct{ Token string }
	anon.must(200, "POST", "/api/user/login", map[string]string{"email": email, "password": "correct-horse"}).json(t, &tok)
	return u.ID, api{t: t, base: base, token: tok.Token}
}

// soldLevel is a stock level with what was sold, and what staff refunds
// put back on sale.
type soldLevel struct{ Available, Reserved, Sold, Restocked int64 }

func sold(a api, id string) soldLevel {
	a.t.Helper()
	var s soldLevel
	a.staff().must(200, "GET", "/api/product/stock/"+id, nil).json(a.t, &s)
	return s
}

func productPrice(a api, id string) int64 {
	a.t.Helper()
	var p struct{ Price int64 }
	a.must(200, "GET", "/api/product/products/"+id, nil).json(a.t, &p)
	return p.Price
}

func countNotifications(a api, event string) int {
	var ns struct {
		Items []struct{ Event string }
	}
	a.must(200, "GET", "/api/notification/notifications", nil).json(a.t, &ns)
	n := 0
	for _, x := range ns.Items {
		if x.Event == event {
			n++
		}
	}
	return n
}

func metrics(t *testing.T, base string) string {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
