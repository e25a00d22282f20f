package payment

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

func TestLedger(t *testing.T) {
	ctx := context.Background()
	bus := kittest.Bus(t, "payment")
	st, _ := kit.NewStore[events.Payment](bus.Bucket("payments"))
	pub := &kittest.Published{}
	l, err := NewLedger(st, pub)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		req        ChargeRequest
		wantStatus string
		wantErr    string
	}{
		{"a card is charged", ChargeRequest{"o1", "u1", 500, "card"}, Completed, ""},
		{"card_declined is declined", ChargeRequest{"o2", "u1", 500, DeclinedMethod}, Declined, ""},
		{"an amount over the limit is declined", ChargeRequest{"o3", "u1", MaxAmount + 1, "card"}, Declined, ""},
		{"a replay returns the first outcome", ChargeRequest{"o1", "u1", 500, "card"}, Completed, ""},
		{"a replay with another amount conflicts", ChargeRequest{"o1", "u1", 501, "card"}, "", CodeIdempotencyMismatch},
		{"a zero amount is invalid", ChargeRequest{"o4", "u1", 0, "card"}, "", kit.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, err := l.Charge(ctx, tt.req)
			if tt.wantErr != "" {
				if kit.AsError(err).Code != tt.wantErr {
					t.Fatalf("err %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || p.Status != tt.wantStatus {
				t.Fatalf("payment %+v err %v", p, err)
			}
		})
	}
	if got := pub.Types(); !slices.Equal(got, []string{catalog.PaymentCompleted, catalog.PaymentFailed, catalog.PaymentFailed, catalog.PaymentCompleted}) {
		t.Errorf("events %v", got)
	}
	for range 2 {
		p, err := l.Refund(ctx, "o1", "arrived broken")
		if err != nil || p.Status != Refunded || p.RefundReason != "arrived broken" {
			t.Fatalf("refund: %+v %v", p, err)
		}
	}
	if _, err := l.Refund(ctx, "o2", "x"); kit.AsError(err).Code != CodeNotRefundable {
		t.Fatalf("refunding a decline: %v", err)
	}
	if _, err := l.Refund(ctx, "nobody", "x"); kit.AsError(err).Code != CodePaymentNotFound {
		t.Fatalf("refunding an order never charged: %v", err)
	}
	if p, found, err := l.Status(ctx, "o1"); err != nil || !found || p.Status != Refunded {
		t.Fatalf("status: %+v %v %v", p, found, err)
	}
	if _, found, err := l.Status(ctx, "nobody"); err != nil || found {
		t.Fatalf("an unknown order has a payment: %v %v", found, err)
	}
	mismatch := []struct {
		req   ChargeRequest
		field string
	}{
		{ChargeRequest{"o3", "u1", MaxAmount + 2, "card"}, "amount"},
		{ChargeRequest{"o3", "u2", MaxAmount + 1, "card"}, "user_id"},
		{ChargeRequest{"o3", "u1", MaxAmount + 1, "cash"}, "method"},
	}
	for _, tt := range mismatch {
		if _, _, err := l.Charge(ctx, tt.req); kit.AsError(err).Code != CodeIdempotencyMismatch || kit.AsError(err).Field != tt.field {
			t.Errorf("a replay with another %s: %v", tt.field, err)
		}
	}
}

// A void closes an order's money whatever came first: before any charge it
// refuses the charge that comes later; after a completed charge it refunds
// it at once; a decline stays a decline. Repeating it answers the same.
func TestVoid(t *testing.T) {
	ctx := context.Background()
	st, _ := kit.NewStore[events.Payment](kittest.Bus(t, "payment").Bucket("payments"))
	pub := &kittest.Published{}
	l, _ := NewLedger(st, pub)
	if _, _, err := l.Charge(ctx, ChargeRequest{"paid", "u1", 500, "card"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Charge(ctx, ChargeRequest{"declined", "u1", 500, DeclinedMethod}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		order, status string
		taken         bool
	}{
		{"never-charged", Voided, false},
		{"paid", Refunded, true},
		{"declined", Declined, false},
	}
	for _, tt := range tests {
		t.Run(tt.order, func(t *testing.T) {
			for range 2 {
				p, taken, err := l.Void(ctx, tt.order, "cancelled: out of stock")
				if err != nil || p.Status != tt.status || taken != tt.taken {
					t.Fatalf("void: %+v money taken %v, %v; want %s, %v", p, taken, err, tt.status, tt.taken)
				}
			}
		})
	}
	if _, _, err := l.Charge(ctx, ChargeRequest{"never-charged", "u1", 500, "card"}); kit.AsError(err).Code != CodeOrderVoided {
		t.Fatalf("a charge after the void: %v", err)
	}
	if p, _, _ := l.Status(ctx, "never-charged"); p.Status != Voided {
		t.Fatalf("after the refused charge the order is %s", p.Status)
	}
	if _, err := l.Refund(ctx, "never-charged", "x"); kit.AsError(err).Code != CodeNotRefundable {
		t.Fatalf("refunding a voided order: %v", err)
	}
	if _, err := l.Of(ctx, "u1", "never-charged"); kit.AsError(err).Status != 404 {
		t.Fatalf("a customer reading a voided order's payment: %v", err)
	}
	if p, _, _ := l.Status(ctx, "paid"); p.RefundReason != "cancelled: out of stock" || p.RefundedAt == nil {
		t.Fatalf("the voided charge: %+v", p)
	}
	want := []string{catalog.PaymentCompleted, catalog.PaymentFailed, catalog.PaymentRefunded, catalog.PaymentRefunded}
	if got := pub.Types(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v (a repeated void republishes the same refund id)", got, want)
	}
	if pub.Events[2].ID != pub.Events[3].ID {
		t.Errorf("two refund events for one void: %s, %s", pub.Events[2].ID, pub.Events[3].ID)
	}
}

// Charge and Void of one order race on its record: whichever wins, money
// is never left taken. Either the charge is refused, or it went through
// and the void gave it back and says so.
func TestChargeRacingVoidNeverLeavesMoneyTaken(t *testing.T) {
	ctx := context.Background()
	bus := kittest.Bus(t, "payment")
	st, _ := kit.NewStore[events.Payment](bus.Bucket("payments"))
	l, _ := NewLedger(st, &kittest.Published{})
	var charged, refused int
	for i := range 40 {
		order := fmt.Sprintf("race-%d", i)
		var (
			wg        sync.WaitGroup
			chargeErr error
			taken     bool
			voidErr   error
		)
		wg.Go(func() { _, _, chargeErr = l.Charge(ctx, ChargeRequest{order, "u1", 500, "card"}) })
		wg.Go(func() { _, taken, voidErr = l.Void(ctx, order, "cancelled") })
		wg.Wait()
		if voidErr != nil {
			t.Fatalf("%s: void: %v", order, voidErr)
		}
		p, _, _ := l.Status(ctx, order)
		switch {
		case chargeErr == nil:
			charged++
			if p.Status != Refunded || !taken {
				t.Fatalf("%s: the charge went through, then the void left %s (money taken %v)", order, p.Status, taken)
			}
		case kit.AsError(chargeErr).Code == CodeOrderVoided:
			refused++
			if p.Status != Voided || taken {
				t.Fatalf("%s: the charge was refused, the order is %s (money taken %v)", order, p.Status, taken)
			}
		default:
			t.Fatalf("%s: charge: %v", order, chargeErr)
		}
	}
	t.Logf("%d charges won the race and were refunded, %d were refused", charged, refused)
}

func FuzzChargeRequest(f *testing.F) {
	f.Add("o1", "u1", int64(1), "card")
	f.Add("a.b", "", int64(-1), "")
	f.Add("o", "u", int64(1), "                                  ")
	f.Fuzz(func(t *testing.T, order, user string, amount int64, method string) {
		c := ChargeRequest{OrderID: order, UserID: user, Amount: amount, Method: method}
		err := c.Validate()
		ok := kit.ValidID(order) && kit.ValidID(user) && amount > 0 && strings.TrimSpace(method) != "" && len(method) <= 32
		if (err == nil) != ok {
			t.Fatalf("Validate(%+v) = %v", c, err)
		}
		if err != nil && kit.AsError(err).Field == "" {
			t.Fatalf("%v names no field", err)
		}
	})
}
