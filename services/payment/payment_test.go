package payment

import (
	"context"
	"slices"
	"strings"
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
		p, err := l.Refund(ctx, IDFor("o1"))
		if err != nil || p.Status != Refunded {
			t.Fatalf("refund: %+v %v", p, err)
		}
	}
	if _, err := l.Refund(ctx, IDFor("o2")); kit.AsError(err).Code != CodeNotRefundable {
		t.Fatalf("refunding a decline: %v", err)
	}
	ps, err := l.ByOrder(ctx, "o1")
	if err != nil || len(ps) != 1 || ps[0].Status != Refunded {
		t.Fatalf("by order: %+v %v", ps, err)
	}
	if ps, _ := l.ByOrder(ctx, "nobody"); len(ps) != 0 {
		t.Fatalf("unknown order has payments: %+v", ps)
	}
}

func FuzzChargeRequest(f *testing.F) {
	for _, s := range []string{`{"orderId":"o","userId":"u","amount":1,"method":"card"}`, `{"amount":-1}`, `{"orderId":"a.b"}`, `{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var c ChargeRequest
		if err := kit.DecodeJSON(strings.NewReader(body), &c); err != nil {
			if kit.AsError(err).Status != 400 {
				t.Fatalf("%v is not a 400", err)
			}
			return
		}
		if c.Validate() == nil && (!kit.ValidID(c.OrderID) || c.Amount <= 0) {
			t.Fatalf("accepted %+v", c)
		}
	})
}
