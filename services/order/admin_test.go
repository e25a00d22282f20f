package order_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/order"
	"github.com/switchboard-dev/switchboard/services/payment"
	"github.com/switchboard-dev/switchboard/services/product"
)

// Staff list every customer's latest orders, newest first, with the
// record's fields (status, history, whatever steps the saga keeps) but not
// the customer's e-mail; customers and anonymous callers are refused.
func TestStaffListTheLatestOrders(t *testing.T) {
	env := kittest.StartNATS(t, "").Env()
	prod := kittest.Serve(t, product.Definition, env)
	pay := kittest.Serve(t, payment.Definition, env)
	env[catalog.EnvGRPC("product")], env[catalog.EnvGRPC("payment")] = prod.GRPCAddr, pay.GRPCAddr
	svc := kittest.Serve(t, order.Definition, env)
	ada, bob := kittest.Token(t, "ada"), kittest.Token(t, "bob")
	admin := kittest.StaffToken(t, "staff1")

	place := func(token, key string, qty int64) events.Order {
		t.Helper()
		req := order.PlaceRequest{Items: []events.Item{{ProductID: "keyboard", Quantity: qty}}, PaymentMethod: "card", ShippingAddress: "1 Main St"}
		_, _, raw := call(t, "POST", svc.URL+"/orders", token, req, kit.HeaderIdempotencyKey, key)
		var o events.Order
		if err := json.Unmarshal(raw, &o); err != nil || o.ID == "" {
			// A cancelled order answers {"error", "order"}.
			var failed struct{ Order events.Order }
			if json.Unmarshal(raw, &failed) != nil || failed.Order.ID == "" {
				t.Fatalf("place: %s", raw)
			}
			o = failed.Order
		}
		return o
	}
	list := func(token, query string) (int, kit.Error, []map[string]any) {
		t.Helper()
		status, e, raw := call(t, "GET", svc.URL+"/admin/orders"+query, token, nil)
		var l struct{ Items []map[string]any }
		if status == http.StatusOK {
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Fatalf("%s", raw)
			}
		}
		return status, e, l.Items
	}

	first := place(ada, "a1", 1)
	// Before the watch starts and after: both orders are listed.
	status, _, items := list(admin, "")
	if status != http.StatusOK || len(items) != 1 || items[0]["id"] != first.ID || items[0]["status"] != order.Confirmed {
		t.Fatalf("staff list: %d %v", status, items)
	}
	second := place(bob, "b1", 1000) // more than the stock of 100: cancelled
	status, _, items = list(admin, "")
	if status != http.StatusOK || len(items) != 2 {
		t.Fatalf("staff list after a second order: %d %v", status, items)
	}
	if items[0]["id"] != second.ID || items[0]["status"] != order.Cancelled || items[1]["id"] != first.ID {
		t.Errorf("not newest first: %v", items)
	}
	for _, it := range items {
		raw, _ := json.Marshal(it)
		if strings.Contains(string(raw), "email") || strings.Contains(string(raw), "requestHash") {
			t.Errorf("the staff list shows %s", raw)
		}
		if _, ok := it["history"].([]any); !ok {
			t.Errorf("no history in %s", raw)
		}
	}
	if _, _, items = list(admin, "?limit=1"); len(items) != 1 || items[0]["id"] != second.ID {
		t.Errorf("limit=1: %v", items)
	}

	refusals := []struct {
		name, token, query string
		status             int
		code, field        string
	}{
		{"a customer", ada, "", http.StatusForbidden, kit.CodeForbidden, ""},
		{"no token", "", "", http.StatusUnauthorized, kit.CodeUnauthenticated, ""},
		{"a limit of 0", admin, "?limit=0", http.StatusBadRequest, kit.CodeInvalid, "limit"},
		{"a limit past the most", admin, "?limit=201", http.StatusBadRequest, kit.CodeInvalid, "limit"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			status, e, _ := list(tt.token, tt.query)
			if status != tt.status || e.Code != tt.code || e.Field != tt.field {
				t.Errorf("%d %+v, want %d %s field %q", status, e, tt.status, tt.code, tt.field)
			}
		})
	}
}

// An order whose outcome event is not yet published carries it in its
// record, with the customer's e-mail for notification: the staff list
// shows neither. (TestStaffListTheLatestOrders met such a record only when
// it listed within the moment between a transition and its publish.)
func TestStaffListHidesTheOutbox(t *testing.T) {
	bus := kittest.Bus(t, "order")
	kv := bus.Bucket("orders")
	raw := `{"id":"o1","userId":"bob","status":"cancelled","email":"bob@example.com","requestHash":"abc","step":"cancel",` +
		`"history":[{"status":"pending"}],"outbox":[{"id":"order.cancelled:o1","type":"order.cancelled","data":{"email":"bob@example.com"}}]}`
	if _, err := kv.Put(t.Context(), "bob.o1", []byte(raw)); err != nil {
		t.Fatal(err)
	}
	items, err := order.NewRecent(kv, time.Minute).List(t.Context(), 10)
	if err != nil || len(items) != 1 {
		t.Fatalf("list: %v %v", items, err)
	}
	got, _ := json.Marshal(items[0])
	for _, hidden := range []string{"email", "example.com", "outbox", "requestHash"} {
		if strings.Contains(string(got), hidden) {
			t.Errorf("the staff list shows %q: %s", hidden, got)
		}
	}
	if items[0]["id"] != "o1" || items[0]["step"] != "cancel" {
		t.Errorf("the staff list lost the order's own fields: %s", got)
	}
}
