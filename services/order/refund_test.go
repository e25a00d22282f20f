package order

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

var staff = &kit.Claims{Roles: []string{kit.RoleAdmin}}

func init() { staff.Subject = "staff1" }

func restock(yes bool) RefundRequest { return RefundRequest{Restock: &yes, Reason: "arrived broken"} }

// payments answers a charge, then that it completed, then a refund, as
// payment does.
func payments() *fakePayments { return &fakePayments{status: PaymentCompleted} }

// confirmedOrder places one order through a fresh saga and returns it.
func confirmedOrder(t *testing.T) (*Orders, *kit.Store[record], *fakeStock, *fakePayments, *kittest.Published, string) {
	t.Helper()
	st, _ := kit.NewStore[record](kittest.Bus(t, "order").Bucket("orders"))
	prod, pay, pub := products(), payments(), &kittest.Published{}
	s, err := NewOrders(st, prod, pay, pub, "test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	o, _, err := s.Place(context.Background(), claims, "k1", req)
	if err != nil || o.Status != Confirmed {
		t.Fatalf("placing: %+v %v", o, err)
	}
	return s, st, prod, pay, pub, o.ID
}

func TestStaffRefund(t *testing.T) {
	for _, back := range []bool{true, false} {
		name := map[bool]string{true: "with the goods back in stock", false: "with the goods kept"}[back]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, st, prod, pay, pub, id := confirmedOrder(t)
			o, status, err := s.Refund(ctx, staff, id, restock(back))
			if err != nil || status != http.StatusOK || o.Status != Refunded {
				t.Fatalf("refund: %d %+v %v", status, o, err)
			}
			if o.Refund == nil || o.Refund.Restock != back || o.Refund.Reason != "arrived broken" {
				t.Errorf("the order does not say what was decided: %+v", o.Refund)
			}
			if last := o.History[len(o.History)-1]; last.Status != Refunded || last.Reason != "arrived broken" {
				t.Errorf("history ends with %+v", last)
			}
			if n := pay.called("refund"); n != 1 {
				t.Errorf("payment refunded %d times", n)
			}
			if got, want := prod.called("restock"), map[bool]int{true: 1, false: 0}[back]; got != want {
				t.Errorf("%d restocks, want %d", got, want)
			}
			if !slices.Equal(pub.Types(), []string{catalog.OrderCreated, catalog.OrderConfirmed, catalog.OrderRefunded}) {
				t.Errorf("events %v", pub.Types())
			}
			rec, _, _ := st.Get(ctx, key("u1", id))
			if !rec.done() || rec.RefundedBy != "staff1" || rec.LeaseOwner != "" {
				t.Errorf("record after the refund: %+v", rec)
			}

			// Asked again, even with the other choice: the first decision
			// stands and nothing is paid twice.
			again, status, err := s.Refund(ctx, staff, id, restock(!back))
			if err != nil || status != http.StatusOK || again.Refund.Restock != back {
				t.Fatalf("second refund: %d %+v %v", status, again, err)
			}
			if pay.called("refund") != 1 || len(pub.Types()) != 3 {
				t.Errorf("a second refund did more: %v", pub.Types())
			}
			if cust, _ := s.Get(ctx, "u1", id); cust.Status != Refunded {
				t.Errorf("the customer sees %s", cust.Status)
			}
		})
	}
}

func TestRefundRefusals(t *testing.T) {
	ctx := context.Background()
	s, _, _, pay, _, id := confirmedOrder(t)
	// A declined order, cancelled.
	declined := PlaceRequest{Items: req.Items, PaymentMethod: "card_declined", ShippingAddress: "1 Main St"}
	pay.set("charge", domain(ErrDeclined, 402, "payment_declined"))
	cancelled, _, _ := s.Place(ctx, claims, "k2", declined)
	if cancelled.Status != Cancelled {
		t.Fatalf("setup: %s", cancelled.Status)
	}
	no := false
	tests := []struct {
		name        string
		id          string
		req         RefundRequest
		status      int
		code, field string
	}{
		{"a cancelled order", cancelled.ID, restock(true), 409, CodeNotRefundable, "id"},
		{"an unknown order", "0123456789abcdef0123", restock(true), 404, kit.CodeNotFound, ""},
		{"an id that is no id", "*", restock(true), 404, kit.CodeNotFound, ""},
		{"no restock choice", id, RefundRequest{Reason: "x"}, 400, kit.CodeInvalid, "restock"},
		{"no reason", id, RefundRequest{Restock: &no, Reason: "  "}, 400, kit.CodeInvalid, "reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.Refund(ctx, staff, tt.id, tt.req)
			if e := kit.AsError(err); err == nil || e.Status != tt.status || e.Code != tt.code || e.Field != tt.field {
				t.Fatalf("got %v, want %d %s naming %q", err, tt.status, tt.code, tt.field)
			}
		})
	}
	if pay.called("refund") != 0 {
		t.Fatal("a refused refund reached payment")
	}
	if o, _ := s.Get(ctx, "u1", id); o.Status != Confirmed {
		t.Fatalf("refused refunds changed the order: %s", o.Status)
	}
}

// A pending order cannot be refunded either: nothing is charged for sure.
func TestRefundOfAPendingOrder(t *testing.T) {
	ctx := context.Background()
	st, _ := kit.NewStore[record](kittest.Bus(t, "order").Bucket("orders"))
	r := newRecord(IDFor("u1", "k1"), claims, req, "other", time.Now(), time.Hour)
	if _, err := st.Create(ctx, key("u1", r.ID), r); err != nil {
		t.Fatal(err)
	}
	s, _ := NewOrders(st, products(), payments(), &kittest.Published{}, "test", time.Minute)
	if _, _, err := s.Refund(ctx, staff, r.ID, restock(true)); kit.AsError(err).Code != CodeNotRefundable {
		t.Fatalf("refunding a pending order: %v", err)
	}
}

// Payment is down when staff refund: the order is refunded with the money
// owed (202), and a sweep on another instance, one that had already seen
// the order confirmed, returns it once payment is back.
func TestAnInterruptedRefundIsFinishedBySweep(t *testing.T) {
	ctx := context.Background()
	s, st, _, pay, _, id := confirmedOrder(t)
	otherPub := &kittest.Published{}
	other, _ := NewOrders(st, products(), pay, otherPub, "other", time.Minute)
	if n, err := other.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep of a confirmed order resumed %d (%v)", n, err)
	}

	pay.set("refund", transport(ErrNotSent))
	o, status, err := s.Refund(ctx, staff, id, restock(true))
	if err != nil || status != http.StatusAccepted || o.Status != Refunded {
		t.Fatalf("refund with payment down: %d %+v %v", status, o, err)
	}
	rec, _, _ := st.Get(ctx, key("u1", id))
	if rec.Step != StepRepay {
		t.Fatalf("the refund stands at step %q, want %q", rec.Step, StepRepay)
	}

	pay.set("refund", nil)
	if n, _ := other.Sweep(ctx); n != 0 {
		t.Fatalf("a sweep took a refund whose lease is held (%d)", n)
	}
	other.now = func() time.Time { return time.Now().Add(2 * time.Minute) } // the lease has expired
	if n, err := other.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep resumed %d (%v), want the refund", n, err)
	}
	rec, _, _ = st.Get(ctx, key("u1", id))
	if !rec.done() || rec.Status != Refunded {
		t.Fatalf("after the sweep: %+v", rec)
	}
	if !slices.Equal(otherPub.Types(), []string{catalog.OrderRefunded}) {
		t.Fatalf("the sweeping instance published %v", otherPub.Types())
	}
	if o, status, _ := s.Refund(ctx, staff, id, restock(true)); status != http.StatusOK || o.Status != Refunded {
		t.Fatalf("asked again after the sweep: %d %s", status, o.Status)
	}
}

// A finished order is left alone by sweeps and by a retried POST: before
// this was fixed, both compensated a confirmed order again and announced
// order.cancelled for it.
func TestFinishedOrdersStayFinished(t *testing.T) {
	ctx := context.Background()
	s, _, _, pay, pub, id := confirmedOrder(t)
	for range 2 {
		if n, err := s.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("sweep resumed %d (%v)", n, err)
		}
	}
	o, status, err := s.Place(ctx, claims, "k1", req)
	if err != nil || status != http.StatusCreated || o.ID != id || o.Status != Confirmed {
		t.Fatalf("retried POST: %d %+v %v", status, o, err)
	}
	if !slices.Equal(pub.Types(), []string{catalog.OrderCreated, catalog.OrderConfirmed}) {
		t.Fatalf("events %v", pub.Types())
	}
	if pay.called("status") != 0 {
		t.Fatal("a finished order was compensated again")
	}
}

func FuzzRefundRequest(f *testing.F) {
	for _, s := range []string{`{"restock":true,"reason":"broken"}`, `{"restock":null,"reason":"x"}`, `{"reason":""}`, `{"restock":"yes"}`, `{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var r RefundRequest
		if err := kit.DecodeJSON(strings.NewReader(body), &r); err != nil {
			if kit.AsError(err).Status != 400 {
				t.Fatalf("%v is not a 400", err)
			}
			return
		}
		if r.Validate() == nil && (r.Restock == nil || strings.TrimSpace(r.Reason) == "") {
			t.Fatalf("accepted %+v", r)
		}
	})
}
