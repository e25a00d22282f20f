package payment_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	paymentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/payment/v1"

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

// A customer reads the payment of their own order and nothing else; money
// moves only through the gRPC API, for order's identity alone (a staff
// refund goes through order).
func TestCustomersOnlyReadTheirOwn(t *testing.T) {
	svc := kittest.Serve(t, payment.Definition, kittest.StartNATS(t, "").Env())
	ada := kittest.Token(t, "ada")
	bob := kittest.Token(t, "bob")
	admin := kittest.StaffToken(t, "staff1")
	ctx := context.Background()
	asOrder := paymentv1.NewPaymentsClient(kittest.Platform(t).GRPCClient(t, "order", "payment", svc.GRPCAddr))
	asNotification := paymentv1.NewPaymentsClient(kittest.Platform(t).GRPCClient(t, "notification", "payment", svc.GRPCAddr))

	// Order charges Ada's order o1, as the saga does.
	if resp, err := asOrder.Charge(ctx, &paymentv1.ChargeRequest{OrderId: "o1", UserId: "ada", Amount: 5000, Method: "card"}); err != nil ||
		resp.GetPayment().GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_COMPLETED || resp.GetReplayed() {
		t.Fatalf("order's charge: %v %v", resp, err)
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

	// Over REST the money routes do not exist, whoever asks.
	money := []struct{ method, path string }{
		{"POST", "/payments"}, {"POST", "/payments/" + payment.IDFor("o1") + "/refund"}, {"GET", "/orders/o1/payments"},
	}
	for _, tt := range money {
		for _, token := range []string{"", ada, admin} {
			if status, _, raw := call(t, tt.method, svc.URL+tt.path, token, map[string]any{"orderId": "o2", "userId": "ada", "amount": 1, "method": "card"}); status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
				t.Errorf("%s %s over REST: %d %s", tt.method, tt.path, status, raw)
			}
		}
	}
	// Over gRPC, notification is refused every method.
	refused := map[string]func() error{
		"Charge": func() error {
			_, err := asNotification.Charge(ctx, &paymentv1.ChargeRequest{OrderId: "o2", UserId: "ada", Amount: 1, Method: "card"})
			return err
		},
		"Refund": func() error {
			_, err := asNotification.Refund(ctx, &paymentv1.RefundRequest{OrderId: "o1", Reason: "mine"})
			return err
		},
		"Void": func() error {
			_, err := asNotification.Void(ctx, &paymentv1.VoidRequest{OrderId: "o1", Reason: "mine"})
			return err
		},
		"GetStatus": func() error {
			_, err := asNotification.GetStatus(ctx, &paymentv1.GetStatusRequest{OrderId: "o1"})
			return err
		},
	}
	for name, call := range refused {
		if err := call(); grpcstatus.Code(err) != codes.PermissionDenied {
			t.Errorf("notification calling %s: %v, want PermissionDenied", name, err)
		}
	}
	_, _, raw = call(t, "GET", svc.URL+"/payments?orderId=o1", ada, nil)
	if err := json.Unmarshal(raw, &p); err != nil || p.Status != payment.Completed || p.RefundedAt != nil {
		t.Fatalf("after the refused refunds Ada's payment is %s", raw)
	}
	if status, _, _ := call(t, "GET", svc.URL+"/payments?orderId=o2", ada, nil); status != http.StatusNotFound {
		t.Fatalf("a refused charge left a payment: %d", status)
	}

	// Order reaches all four.
	if st, err := asOrder.GetStatus(ctx, &paymentv1.GetStatusRequest{OrderId: "o1"}); err != nil ||
		st.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_COMPLETED || st.GetPaymentId() != payment.IDFor("o1") {
		t.Fatalf("order's status lookup: %v %v", st, err)
	}
	if st, err := asOrder.GetStatus(ctx, &paymentv1.GetStatusRequest{OrderId: "o9"}); err != nil || st.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_NONE {
		t.Fatalf("the status of an order never charged: %v %v", st, err)
	}
	if r, err := asOrder.Refund(ctx, &paymentv1.RefundRequest{OrderId: "o1", Reason: "arrived broken"}); err != nil ||
		r.GetPayment().GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED || r.GetPayment().GetRefundReason() != "arrived broken" {
		t.Fatalf("order's refund: %v %v", r, err)
	}
	if v, err := asOrder.Void(ctx, &paymentv1.VoidRequest{OrderId: "o3", Reason: "cancelled"}); err != nil ||
		v.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_VOIDED || v.GetMoneyTaken() {
		t.Fatalf("order's void: %v %v", v, err)
	}
	_, err := asOrder.Charge(ctx, &paymentv1.ChargeRequest{OrderId: "o3", UserId: "ada", Amount: 1, Method: "card"})
	if e := kit.AsError(err); grpcstatus.Code(err) != codes.FailedPrecondition || e.Code != payment.CodeOrderVoided {
		t.Fatalf("a charge after the void: %v", err)
	}
	_, err = asOrder.Charge(ctx, &paymentv1.ChargeRequest{OrderId: "o4", UserId: "ada", Amount: 1, Method: payment.DeclinedMethod})
	if e := kit.AsError(err); grpcstatus.Code(err) != codes.FailedPrecondition || e.Code != payment.CodeDeclined {
		t.Fatalf("a declined charge: %v", err)
	}
	if st, _ := asOrder.GetStatus(ctx, &paymentv1.GetStatusRequest{OrderId: "o4"}); st.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED {
		t.Fatalf("the status of a declined charge: %v", st)
	}
}
