package order_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/order"
	"github.com/switchboard-dev/switchboard/services/payment"
	"github.com/switchboard-dev/switchboard/services/product"
)

func call(t *testing.T, method, url, token string, body any, hdr ...string) (int, kit.Error, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := kittest.GatewayHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e kit.ErrorBody
	_ = json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Error, raw
}

// Orders are their customer's: another's answers 404, and only staff
// refund, which order checks itself. Product and payment are the real
// services.
func TestOrdersBelongToTheirCustomer(t *testing.T) {
	env := kittest.StartNATS(t, "").Env()
	env["UPSTREAM_ATTEMPTS"] = "1"
	prod := kittest.Serve(t, product.Definition, env)
	pay := kittest.Serve(t, payment.Definition, env)
	env[catalog.EnvGRPC("product")], env[catalog.EnvGRPC("payment")] = prod.GRPCAddr, pay.GRPCAddr
	svc := kittest.Serve(t, order.Definition, env)
	ada, bob := kittest.Token(t, "ada"), kittest.Token(t, "bob")
	admin := kittest.StaffToken(t, "staff1")

	place := order.PlaceRequest{Items: []events.Item{{ProductID: "keyboard", Quantity: 1}}, PaymentMethod: "card", ShippingAddress: "1 Main St"}
	status, _, raw := call(t, "POST", svc.URL+"/orders", ada, place, kit.HeaderIdempotencyKey, "k1")
	var o events.Order
	if status != http.StatusCreated || json.Unmarshal(raw, &o) != nil || o.Status != order.Confirmed {
		t.Fatalf("Ada's order: %d %s", status, raw)
	}
	refund := map[string]any{"restock": true, "reason": "changed her mind"}

	refusals := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"another customer reading it", "GET", "/orders/" + o.ID, bob, nil, http.StatusNotFound, kit.CodeNotFound},
		{"the owner refunding it", "POST", "/orders/" + o.ID + "/refund", ada, refund, http.StatusForbidden, kit.CodeForbidden},
		{"another customer refunding it", "POST", "/orders/" + o.ID + "/refund", bob, refund, http.StatusForbidden, kit.CodeForbidden},
		{"a refund without a token", "POST", "/orders/" + o.ID + "/refund", "", refund, http.StatusUnauthorized, kit.CodeUnauthenticated},
		{"a read without a token", "GET", "/orders/" + o.ID, "", nil, http.StatusUnauthorized, kit.CodeUnauthenticated},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			status, e, raw := call(t, tt.method, svc.URL+tt.path, tt.token, tt.body)
			if status != tt.status || e.Code != tt.code {
				t.Fatalf("%d %s, want %d %s", status, raw, tt.status, tt.code)
			}
		})
	}
	var bobs struct{ Items []events.Order }
	if _, _, raw := call(t, "GET", svc.URL+"/orders", bob, nil); json.Unmarshal(raw, &bobs) != nil || len(bobs.Items) != 0 {
		t.Fatalf("Bob's list: %s", raw)
	}
	if _, _, raw := call(t, "GET", svc.URL+"/orders/"+o.ID, ada, nil); json.Unmarshal(raw, &o) != nil || o.Status != order.Confirmed {
		t.Fatalf("after the refused refunds Ada's order is %s", raw)
	}

	status, _, raw = call(t, "POST", svc.URL+"/orders/"+o.ID+"/refund", admin, refund)
	if status != http.StatusOK || json.Unmarshal(raw, &o) != nil || o.Status != order.Refunded {
		t.Fatalf("staff refund: %d %s", status, raw)
	}
	var p events.Payment
	if _, _, raw := call(t, "GET", pay.URL+"/payments?orderId="+o.ID, ada, nil); json.Unmarshal(raw, &p) != nil || p.Status != payment.Refunded {
		t.Fatalf("Ada's payment after the refund: %s", raw)
	}
	if status, e, _ := call(t, "POST", svc.URL+"/orders/"+o.ID+"/refund", admin, map[string]any{"reason": "again"}); status != http.StatusBadRequest || e.Field != "restock" {
		t.Fatalf("a refund without restock: %d %+v", status, e)
	}
}

// An Idempotency-Key names one request: the same request again returns
// its order, a different one is refused, not answered with the old order.
func TestIdempotencyKeyReusedForAnotherOrder(t *testing.T) {
	env := kittest.StartNATS(t, "").Env()
	env["UPSTREAM_ATTEMPTS"] = "1"
	prod := kittest.Serve(t, product.Definition, env)
	pay := kittest.Serve(t, payment.Definition, env)
	env[catalog.EnvGRPC("product")], env[catalog.EnvGRPC("payment")] = prod.GRPCAddr, pay.GRPCAddr
	svc := kittest.Serve(t, order.Definition, env)
	ada := kittest.Token(t, "ada")

	one := order.PlaceRequest{Items: []events.Item{{ProductID: "keyboard", Quantity: 1}}, PaymentMethod: "card", ShippingAddress: "1 Main St"}
	status, _, raw := call(t, "POST", svc.URL+"/orders", ada, one, kit.HeaderIdempotencyKey, "k1")
	var first events.Order
	if status != http.StatusCreated || json.Unmarshal(raw, &first) != nil {
		t.Fatalf("the order: %d %s", status, raw)
	}
	two := one
	two.Items = []events.Item{{ProductID: "keyboard", Quantity: 3}}
	status, e, raw := call(t, "POST", svc.URL+"/orders", ada, two, kit.HeaderIdempotencyKey, "k1")
	if status != http.StatusUnprocessableEntity || e.Field != kit.HeaderIdempotencyKey {
		t.Fatalf("the key reused for 3 keyboards: %d %s, want 422 naming %s", status, raw, kit.HeaderIdempotencyKey)
	}
	var again events.Order
	status, _, raw = call(t, "POST", svc.URL+"/orders", ada, one, kit.HeaderIdempotencyKey, "k1")
	if status != http.StatusCreated || json.Unmarshal(raw, &again) != nil || again.ID != first.ID || again.Status != order.Confirmed {
		t.Fatalf("the same request again: %d %s, want order %s", status, raw, first.ID)
	}
}
