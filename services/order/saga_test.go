package order

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// fake is a scripted upstream: each request's "METHOD path" is looked up in
// answers (first match by prefix) and recorded.
type fake struct {
	mu      sync.Mutex
	calls   []string
	answers map[string]func() (*kit.Response, error)
	open    bool
}

func (f *fake) Do(_ context.Context, r kit.Request) (*kit.Response, error) {
	call := r.Method + " " + r.Path
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
	best := ""
	for prefix := range f.answers {
		if strings.HasPrefix(call, prefix) && len(prefix) > len(best) {
			best = prefix
		}
	}
	if best == "" {
		return nil, fmt.Errorf("unexpected call %s", call)
	}
	return f.answers[best]()
}

func (f *fake) Open() bool { return f.open }

func (f *fake) called(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func ok(status int, v any) func() (*kit.Response, error) {
	return func() (*kit.Response, error) {
		b, _ := json.Marshal(v)
		return &kit.Response{Status: status, Body: b}, nil
	}
}

func failWith(sentinel error) func() (*kit.Response, error) {
	return func() (*kit.Response, error) {
		return nil, fmt.Errorf("%w: %w", sentinel, kit.Unavailable("payment unavailable"))
	}
}

var claims = &kit.Claims{Email: "ada@example.com"}

func init() { claims.Subject = "u1" }

var req = PlaceRequest{Items: []events.Item{{ProductID: "p1", Quantity: 2}}, PaymentMethod: "card", ShippingAddress: "1 Main St"}

func products() *fake {
	return &fake{answers: map[string]func() (*kit.Response, error){
		"POST /stock/p1/reservations/": ok(200, map[string]any{"state": "committed"}),
		"POST /stock/p1/reservations":  ok(201, map[string]any{"price": 5000}),
		"DELETE /stock/p1/":            ok(200, map[string]any{"state": "released"}),
	}}
}

func TestSaga(t *testing.T) {
	tests := []struct {
		name        string
		products    func() *fake
		payments    *fake
		wantHTTP    int
		wantStatus  string
		wantCode    string
		wantRelease bool
		wantEvents  []string
	}{
		{
			name: "a paid order is confirmed", products: products,
			payments: &fake{answers: map[string]func() (*kit.Response, error){"POST /payments": ok(201, map[string]any{"id": "pay_1"})}},
			wantHTTP: 201, wantStatus: Confirmed,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderConfirmed},
		},
		{
			name: "missing stock cancels with 409 out_of_stock",
			products: func() *fake {
				f := products()
				f.answers["POST /stock/p1/reservations"] = ok(409, kit.ErrorBody{Error: kit.Error{Code: CodeOutOfStock, Message: "none"}})
				return f
			},
			payments: &fake{}, wantHTTP: 409, wantStatus: Cancelled, wantCode: CodeOutOfStock, wantRelease: true,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderCancelled},
		},
		{
			name: "a decline cancels with 402 and releases stock", products: products,
			payments: &fake{answers: map[string]func() (*kit.Response, error){"POST /payments": ok(402, kit.ErrorBody{Error: kit.Error{Code: "payment_declined"}})}},
			wantHTTP: 402, wantStatus: Cancelled, wantCode: CodePaymentDeclined, wantRelease: true,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderCancelled},
		},
		{
			name: "an open payment breaker fails fast with nothing reserved", products: products,
			payments: &fake{open: true}, wantHTTP: 503, wantStatus: Cancelled, wantCode: kit.CodeUnavailable, wantRelease: true,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderCancelled},
		},
		{
			name: "payment unreachable cancels with 503", products: products,
			payments: &fake{answers: map[string]func() (*kit.Response, error){"POST /payments": failWith(kit.ErrNotSent)}},
			wantHTTP: 503, wantStatus: Cancelled, wantCode: kit.CodeUnavailable, wantRelease: true,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderCancelled},
		},
		{
			name: "a timed-out charge that went through is confirmed after asking payment", products: products,
			payments: &fake{answers: map[string]func() (*kit.Response, error){
				"POST /payments": failWith(kit.ErrAmbiguous),
				"GET /orders/":   ok(200, map[string]any{"items": []any{map[string]any{"id": "pay_1", "status": "completed"}}}),
			}},
			wantHTTP: 201, wantStatus: Confirmed,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderConfirmed},
		},
		{
			name: "a timed-out charge that did not happen is cancelled", products: products,
			payments: &fake{answers: map[string]func() (*kit.Response, error){
				"POST /payments": failWith(kit.ErrAmbiguous),
				"GET /orders/":   ok(200, map[string]any{"items": []any{}}),
			}},
			wantHTTP: 503, wantStatus: Cancelled, wantCode: kit.CodeUnavailable, wantRelease: true,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderCancelled},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := kit.NewStore[record](kittest.Bus(t, "order").Bucket("orders"))
			prod, pub := tt.products(), &kittest.Published{}
			s, err := NewOrders(st, prod, tt.payments, pub, "test", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			o, status, err := s.Place(context.Background(), claims, "k1", req)
			if status != tt.wantHTTP || o.Status != tt.wantStatus {
				t.Fatalf("status %d order %s (%v), want %d %s", status, o.Status, err, tt.wantHTTP, tt.wantStatus)
			}
			if tt.wantCode != "" && kit.AsError(err).Code != tt.wantCode {
				t.Fatalf("code %q, want %q", kit.AsError(err).Code, tt.wantCode)
			}
			if got := prod.called("DELETE ") > 0; got != tt.wantRelease {
				t.Errorf("released = %v, want %v", got, tt.wantRelease)
			}
			if !slices.Equal(pub.Types(), tt.wantEvents) {
				t.Errorf("events %v, want %v", pub.Types(), tt.wantEvents)
			}
			if tt.wantStatus == Confirmed && o.Total != 10000 {
				t.Errorf("total %d, want 10000", o.Total)
			}
			if tt.payments.open && prod.called("POST /stock/p1/reservations") > 0 {
				t.Error("reserved stock while payment was known down")
			}
			rec, _, _ := st.Get(context.Background(), key("u1", o.ID))
			if !rec.done() {
				t.Errorf("saga left unfinished: %+v", rec)
			}
		})
	}
}

func TestSweepResumesAnAbandonedSaga(t *testing.T) {
	ctx := context.Background()
	st, _ := kit.NewStore[record](kittest.Bus(t, "order").Bucket("orders"))
	// A saga started by an instance that died: pending, lease expired.
	r := newRecord(IDFor("u1", "k1"), claims, req, "dead-instance", time.Now().Add(-time.Hour), time.Minute)
	if _, err := st.Create(ctx, key("u1", r.ID), r); err != nil {
		t.Fatal(err)
	}
	// One whose lease is still held by a live instance.
	live := newRecord(IDFor("u1", "k2"), claims, req, "live-instance", time.Now(), time.Hour)
	if _, err := st.Create(ctx, key("u1", live.ID), live); err != nil {
		t.Fatal(err)
	}
	pay := &fake{answers: map[string]func() (*kit.Response, error){"POST /payments": ok(200, map[string]any{"id": "pay_1"})}}
	s, _ := NewOrders(st, products(), pay, &kittest.Published{}, "new-instance", time.Minute)
	n, err := s.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("resumed %d (%v), want 1", n, err)
	}
	got, _ := s.Get(ctx, "u1", r.ID)
	if got.Status != Confirmed {
		t.Fatalf("resumed order is %s", got.Status)
	}
	if got, _ := s.Get(ctx, "u1", live.ID); got.Status != Pending {
		t.Fatalf("a leased saga was taken over: %s", got.Status)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		req   PlaceRequest
		field string
	}{
		{"no items", PlaceRequest{PaymentMethod: "card", ShippingAddress: "x"}, "items"},
		{"a zero quantity", PlaceRequest{Items: []events.Item{{ProductID: "p", Quantity: 0}}, PaymentMethod: "card", ShippingAddress: "x"}, "items[0].quantity"},
		{"a client-set price", PlaceRequest{Items: []events.Item{{ProductID: "p", Quantity: 1, Price: 1}}, PaymentMethod: "card", ShippingAddress: "x"}, "items[0].price"},
		{"a repeated product", PlaceRequest{Items: []events.Item{{ProductID: "p", Quantity: 1}, {ProductID: "p", Quantity: 1}}, PaymentMethod: "card", ShippingAddress: "x"}, "items[1].productId"},
		{"no address", PlaceRequest{Items: []events.Item{{ProductID: "p", Quantity: 1}}, PaymentMethod: "card"}, "shippingAddress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e := kit.AsError(tt.req.Validate()); e.Field != tt.field || e.Status != http.StatusBadRequest {
				t.Fatalf("got %+v, want field %s", e, tt.field)
			}
		})
	}
}

func FuzzPlaceRequest(f *testing.F) {
	for _, s := range []string{`{"items":[{"productId":"p","quantity":1}],"paymentMethod":"card","shippingAddress":"x"}`,
		`{"items":[{"productId":"p","quantity":-1}]}`, `{"items":null}`, `{"items":[{}]}`, `{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var p PlaceRequest
		if err := kit.DecodeJSON(strings.NewReader(body), &p); err != nil {
			if kit.AsError(err).Status != 400 {
				t.Fatalf("%v is not a 400", err)
			}
			return
		}
		if p.Validate() == nil {
			for _, it := range p.Items {
				if it.Quantity <= 0 || !kit.ValidID(it.ProductID) {
					t.Fatalf("accepted %+v", p)
				}
			}
		}
	})
}
