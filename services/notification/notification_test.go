package notification

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

type recordingSender struct {
	mu   sync.Mutex
	sent []Notification
}

func (s *recordingSender) Send(_ context.Context, n Notification) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, n)
	return nil
}

func TestEveryEventAndChannelRenders(t *testing.T) {
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	order := events.OrderOutcome{ID: "o1", UserID: "u1", Items: []events.Item{{ProductID: "p1", Quantity: 2, Price: 5000}}, Total: 10000}
	payment := events.Payment{OrderID: "o1", UserID: "u1", Amount: 10000}
	cancelled, failed := order, payment
	cancelled.Error = &kit.Error{Code: "out_of_stock", Message: "only 0 left"}
	failed.Reason = "card declined"
	data := map[string]any{
		catalog.OrderConfirmed:   events.OrderConfirmed{OrderOutcome: order},
		catalog.OrderCancelled:   events.OrderCancelled{OrderOutcome: cancelled},
		catalog.OrderRefunded:    events.OrderRefunded{OrderOutcome: order, Refund: events.Refund{Reason: "arrived broken"}},
		catalog.PaymentCompleted: events.PaymentCompleted{Payment: payment},
		catalog.PaymentFailed:    events.PaymentFailed{Payment: failed},
	}
	// What the templates rendered from the same events when they still
	// read them as maps of their JSON.
	want := map[string]map[string]string{
		catalog.OrderConfirmed: {
			Email: "Subject: Order o1 confirmed\n\nThank you! Your order o1 of 1 item(s) is confirmed. Total: 100.00.",
			SMS:   "Order o1 confirmed, total 100.00.",
			Push:  "Order confirmed: 100.00",
		},
		catalog.OrderCancelled: {
			Email: "Subject: Order o1 cancelled\n\nYour order o1 was cancelled: only 0 left. Nothing was charged.",
			SMS:   "Order o1 cancelled (out_of_stock).",
			Push:  "Order cancelled",
		},
		// order.refunded came later, with no map before it.
		catalog.OrderRefunded: {
			Email: "Subject: Order o1 refunded\n\nYour order o1 was refunded: 100.00 is on its way back to you. Reason: arrived broken",
			SMS:   "Order o1 refunded: 100.00.",
			Push:  "Order refunded: 100.00",
		},
		catalog.PaymentCompleted: {
			Email: "Subject: Payment received\n\nWe received 100.00 for order o1.",
			SMS:   "Payment of 100.00 received for order o1.",
			Push:  "Paid 100.00 for order o1",
		},
		catalog.PaymentFailed: {
			Email: "Subject: Payment declined\n\nYour payment of 100.00 for order o1 was declined: card declined.",
			SMS:   "Payment of 100.00 for order o1 declined: card declined.",
			Push:  "Payment declined",
		},
	}
	for _, typ := range consumes(t) {
		for _, ch := range []string{Email, SMS, Push} {
			body, err := r.Render(typ, ch, data[typ])
			if err != nil || body == "" {
				t.Errorf("%s/%s: %q %v", typ, ch, body, err)
			}
			if body != want[typ][ch] {
				t.Errorf("%s/%s rendered %q, want %q", typ, ch, body, want[typ][ch])
			}
		}
	}
}

// A cancellation says whether the money was taken and given back, as
// order.cancelled's money field tells.
func TestCancellationEmailSaysWhatHappenedToTheMoney(t *testing.T) {
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	for money, want := range map[string]string{
		"returned": "Subject: Order o1 cancelled\n\nYour order o1 was cancelled: payment unavailable. 100.00 was charged and has been returned to you.",
		"none":     "Subject: Order o1 cancelled\n\nYour order o1 was cancelled: payment unavailable. Nothing was charged.",
	} {
		ev := events.OrderCancelled{OrderOutcome: events.OrderOutcome{ID: "o1", Total: 10000, Money: money,
			Error: &kit.Error{Code: kit.CodeUnavailable, Message: "payment unavailable"}}}
		if body, err := r.Render(catalog.OrderCancelled, Email, ev); err != nil || body != want {
			t.Errorf("money %s: %q %v, want %q", money, body, err, want)
		}
	}
}

// recordingNotifier is a notifier on bucket's store whose sends are
// recorded.
func recordingNotifier(t *testing.T, bucket jetstream.KeyValue) (*Notifier, *kit.Store[Notification], *recordingSender) {
	t.Helper()
	st, err := kit.NewStore[Notification](bucket)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	sender := &recordingSender{}
	n, err := NewNotifier(st, r, sender)
	if err != nil {
		t.Fatal(err)
	}
	return n, st, sender
}

func TestOneNotificationPerEvent(t *testing.T) {
	ctx := context.Background()
	n, _, sender := recordingNotifier(t, kittest.Bus(t, "notification").Bucket("notifications"))
	data, _ := json.Marshal(map[string]any{"id": "o1", "userId": "u1", "total": 1000, "items": []any{}})
	ev := kit.Event{ID: kit.EventID(catalog.OrderConfirmed, "o1"), Type: catalog.OrderConfirmed, Data: data}
	if err := n.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := n.Handle(ctx, ev); !errors.Is(err, kit.ErrDuplicate) {
		t.Fatalf("redelivery: %v", err)
	}
	list, err := n.ForUser(ctx, "u1")
	if err != nil || len(list) != 1 || len(sender.sent) != 1 || list[0].Channel != Email {
		t.Fatalf("records %+v, sent %d (%v)", list, len(sender.sent), err)
	}
	if err := n.Handle(ctx, kit.Event{ID: "x", Type: "order.unknown", Data: data}); !errors.Is(err, kit.ErrPermanent) {
		t.Fatalf("an unroutable event must be dropped: %v", err)
	}
}

func consumes(t *testing.T) []string {
	s, ok := catalog.Lookup("notification")
	if !ok {
		t.Fatal("notification is not in the catalog")
	}
	return s.Consumes()
}

// A claim whose answer was lost (the broker restarting as it stored it)
// is stored pending though nothing was sent. The attempt gives it back, so
// the redelivery sends the message once; a pending claim of an attempt
// that may have sent stays at most once.
func TestAClaimGivenBackIsSentOnRedelivery(t *testing.T) {
	ctx := context.Background()
	n, st, sender := recordingNotifier(t, kittest.Bus(t, "notification").Bucket("notifications"))
	event := func(order string) kit.Event {
		data, _ := json.Marshal(map[string]any{"id": order, "userId": "u1", "email": "u1@example.com", "total": 1000, "items": []any{}})
		return kit.Event{ID: kit.EventID(catalog.OrderConfirmed, order), Type: catalog.OrderConfirmed, Data: data}
	}
	stored := func(order, claim string) string { // what a claim leaves when its answer is lost
		k := "u1." + idFor(event(order).ID)
		if _, err := st.Create(ctx, k, Notification{ID: idFor(event(order).ID), UserID: "u1", Event: catalog.OrderConfirmed,
			Channel: Email, Status: StatusPending, Claim: claim, Attempts: 1, EventID: event(order).ID}); err != nil {
			t.Fatal(err)
		}
		return k
	}
	given := stored("o1", "lost")
	if err := n.unclaim(ctx, given, "lost"); err != nil {
		t.Fatal(err)
	}
	if err := n.Handle(ctx, event("o1")); err != nil {
		t.Fatal(err)
	}
	if err := n.Handle(ctx, event("o1")); !errors.Is(err, kit.ErrDuplicate) {
		t.Fatalf("a second redelivery: %v", err)
	}
	if rec, _, _ := st.Get(ctx, given); rec.Status != StatusSent || len(sender.sent) != 1 {
		t.Fatalf("after the claim was given back: record %s, %d sent; want sent once", rec.Status, len(sender.sent))
	}

	other := stored("o2", "mid-send")
	if err := n.unclaim(ctx, other, "another attempt's"); err != nil {
		t.Fatal(err)
	}
	if err := n.Handle(ctx, event("o2")); !errors.Is(err, kit.ErrDuplicate) {
		t.Fatalf("redelivery over an attempt that may have sent: %v", err)
	}
	if rec, _, _ := st.Get(ctx, other); rec.Status != StatusUnknown || len(sender.sent) != 1 {
		t.Fatalf("an attempt that may have sent: record %s, %d sent; want unknown, nothing more sent", rec.Status, len(sender.sent))
	}
}
