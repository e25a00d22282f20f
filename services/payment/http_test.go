package payment_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/payment"
)

func call(t *testing.T, method, url, token string, body any) (int, kit.Error, []byte) {
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e kit.ErrorBody
	_ = json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Error, raw
}

// A customer reads the payment of their own order and nothing else; the
// routes that take or give back money refuse anything carrying a user's
// token, staff included (a staff refund goes through order).
func TestCustomersOnlyReadTheirOwn(t *testing.T) {
	svc := kittest.Serve(t, payment.Definition, kittest.StartNATS(t, "").Env())
	ada := kittest.Token(t, "ada")
	bob := kittest.Token(t, "bob")
	admin := kittest.StaffToken(t, "staff1")

	// Order charges Ada's order o1, as the saga does: no user token.
	charge := payment.ChargeRequest{OrderID: "o1", UserID: "ada", Amount: 5000, Method: "card"}
	if status, _, raw := call(t, "POST", svc.URL+"/payments", "", charge); status != http.StatusCreated {
		t.Fatalf("order's charge: %d %s", status, raw)
	}

	var p events.Payment
	status, _, raw := call(t, "GET", svc.URL+"/payments?orderId=o1", ada, nil)
	if err := json.Unmarshal(raw, &p); status != http.StatusOK || err != nil || p.ID != payment.IDFor("o1") || p.Status != payment.Completed {
		t.Fatalf("Ada reading her payment: %d %s", status, raw)
	}

	_, _, unknown := call(t, "GET", svc.URL+"/payments?orderId=o9", bob, nil)
	reads := []struct {
		name, token, query string
		status             int
		code, field        string
	}{
		{"another customer's order", bob, "?orderId=o1", http.StatusNotFound, kit.CodeNotFound, "orderId"},
		{"staff reading a customer's payment", admin, "?orderId=o1", http.StatusNotFound, kit.CodeNotFound, "orderId"},
		{"an order with no payment", ada, "?orderId=o9", http.StatusNotFound, kit.CodeNotFound, "orderId"},
		{"no order named", ada, "", http.StatusBadRequest, kit.CodeInvalid, "orderId"},
		{"no token", "", "?orderId=o1", http.StatusUnauthorized, kit.CodeUnauthenticated, ""},
	}
	for _, tt := range reads {
		t.Run("GET /payments: "+tt.name, func(t *testing.T) {
			status, e, raw := call(t, "GET", svc.URL+"/payments"+tt.query, tt.token, nil)
			if status != tt.status || e.Code != tt.code || e.Field != tt.field {
				t.Fatalf("%d %s, want %d %s naming %q", status, raw, tt.status, tt.code, tt.field)
			}
		})
	}
	// Existence does not leak: Bob gets for Ada's order what he gets for
	// an order that does not exist, but for the id in the message.
	_, _, other := call(t, "GET", svc.URL+"/payments?orderId=o1", bob, nil)
	if string(bytes.ReplaceAll(other, []byte("o1"), []byte("o9"))) != string(unknown) {
		t.Errorf("another's payment answers %s, a missing one %s", other, unknown)
	}

	money := []struct {
		name, method, path string
		body               any
	}{
		{"charge", "POST", "/payments", payment.ChargeRequest{OrderID: "o2", UserID: "ada", Amount: 1, Method: "card"}},
		{"refund", "POST", "/payments/" + payment.IDFor("o1") + "/refund", nil},
		{"order's status lookup", "GET", "/orders/o1/payments", nil},
	}
	for _, tt := range money {
		for _, who := range []struct{ name, token string }{{"the owner", ada}, {"staff", admin}} {
			t.Run(tt.name+" by "+who.name, func(t *testing.T) {
				if status, e, raw := call(t, tt.method, svc.URL+tt.path, who.token, tt.body); status != http.StatusForbidden || e.Code != kit.CodeForbidden {
					t.Fatalf("%d %s, want 403", status, raw)
				}
			})
		}
	}
	_, _, raw = call(t, "GET", svc.URL+"/payments?orderId=o1", ada, nil)
	if err := json.Unmarshal(raw, &p); err != nil || p.Status != payment.Completed || p.RefundedAt != nil {
		t.Fatalf("after the refused refunds Ada's payment is %s", raw)
	}
	if status, _, _ := call(t, "GET", svc.URL+"/payments?orderId=o2", ada, nil); status != http.StatusNotFound {
		t.Fatalf("a refused charge left a payment: %d", status)
	}

	// Order still reaches all three.
	var list struct{ Items []events.Payment }
	if status, _, raw := call(t, "GET", svc.URL+"/orders/o1/payments", "", nil); status != http.StatusOK || json.Unmarshal(raw, &list) != nil || len(list.Items) != 1 {
		t.Fatalf("order's status lookup: %d %s", status, raw)
	}
	if status, _, raw := call(t, "POST", svc.URL+"/payments/"+payment.IDFor("o1")+"/refund", "", nil); status != http.StatusOK {
		t.Fatalf("order's refund: %d %s", status, raw)
	}
}
