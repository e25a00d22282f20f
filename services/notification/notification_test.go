package notification

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
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
	data := map[string]any{"id": "o1", "userId": "u1", "total": 12345.0, "amount": 12345.0, "orderId": "o1", "reason": "card declined",
		"items": []any{1}, "error": map[string]any{"code": "out_of_stock", "message": "only 0 left"}}
	for _, typ := range consumes(t) {
		for _, ch := range []string{Email, SMS, Push} {
			body, err := r.Render(typ, ch, data)
			if err != nil || body == "" {
				t.Errorf("%s/%s: %q %v", typ, ch, body, err)
			}
		}
	}
}

func TestOneNotificationPerEvent(t *testing.T) {
	ctx := context.Background()
	st, _ := kit.NewStore[Notification](kittest.Bus(t, "notification").Bucket("notifications"))
	r, _ := NewRenderer()
	sender := &recordingSender{}
	n, err := NewNotifier(st, r, sender)
	if err != nil {
		t.Fatal(err)
	}
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
