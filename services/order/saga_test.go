package order

import (
	"context"
	"errors"
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

// fakeStock and fakePayments are scripted ports: each call is recorded as
// "<op> <product or order>", and answers with the error set for its op
// ("reserve", "commit", "release", "restock"; "charge", "status",
// "refund", "void"), or succeeds. The typed gRPC adapters are tested
// against real servers in grpc_test.go.
type fakeStock struct {
	mu    sync.Mutex
	calls []string
	errs  map[string]error
	price int64
	open  bool
}

func (f *fakeStock) record(op, product string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+product)
	return f.errs[op]
}

func (f *fakeStock) Reserve(_ context.Context, product, order string, qty int64) (Reservation, error) {
	if err := f.record("reserve", product); err != nil {
		return Reservation{}, err
	}
	return Reservation{ProductID: product, OrderID: order, Quantity: qty, UnitPrice: f.price, State: Reserving}, nil
}
func (f *fakeStock) Commit(_ context.Context, product, _ string) error {
	return f.record("commit", product)
}
func (f *fakeStock) Release(_ context.Context, product, _ string) error {
	return f.record("release", product)
}
func (f *fakeStock) Restock(_ context.Context, product, _ string, _ int64) error {
	return f.record("restock", product)
}
func (f *fakeStock) Level(_ context.Context, product string) (StockLevel, error) {
	return StockLevel{ProductID: product}, f.record("level", product)
}
func (f *fakeStock) Open() bool { return f.open }

func (f *fakeStock) called(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, op+" ") {
			n++
		}
	}
	return n
}

type fakePayments struct {
	mu     sync.Mutex
	calls  []string
	errs   map[string]error
	status PaymentStatus // what Status answers
	open   bool
}

func (f *fakePayments) record(op, order string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+order)
	return f.errs[op]
}

func (f *fakePayments) set(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.errs == nil {
		f.errs = map[string]error{}
	}
	f.errs[op] = err
}

func (f *fakePayments) Charge(_ context.Context, c ChargeRequest) (Payment, error) {
	if err := f.record("charge", c.OrderID); err != nil {
		return Payment{}, err
	}
	return Payment{ID: "pay_" + c.OrderID, OrderID: c.OrderID, Amount: c.Amount, Status: PaymentCompleted}, nil
}
func (f *fakePayments) Status(_ context.Context, order string) (Payment, error) {
	if err := f.record("status", order); err != nil {
		return Payment{}, err
	}
	return Payment{ID: "pay_" + order, OrderID: order, Status: f.status}, nil
}
func (f *fakePayments) Refund(_ context.Context, order, _ string) (Payment, error) {
	if err := f.record("refund", order); err != nil {
		return Payment{}, err
	}
	return Payment{ID: "pay_" + order, OrderID: order, Status: PaymentRefunded}, nil
}
func (f *fakePayments) Void(_ context.Context, order, _ string) (VoidOutcome, error) {
	return VoidOutcome{Status: PaymentVoided}, f.record("void", order)
}
func (f *fakePayments) Open() bool { return f.open }

func (f *fakePayments) called(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, op+" ") {
			n++
		}
	}
	return n
}

// transport is a failure as the gRPC client reports one: a 503
// dependency_unavailable *kit.Error matching sentinel.
func transport(sentinel error) error {
	return fmt.Errorf("%w: %w", sentinel, kit.Unavailable("upstream unavailable"))
}

// domain is an upstream's refusal as the typed clients return it.
func domain(sentinel error, status int, code string) error {
	return kit.Reasons{code: sentinel}.Wrap(&kit.Error{Status: status, Code: code, Message: code})
}

var claims = &kit.Claims{Email: "ada@example.com"}

func init() { claims.Subject = "u1" }

var req = PlaceRequest{Items: []events.Item{{ProductID: "p1", Quantity: 2}}, PaymentMethod: "card", ShippingAddress: "1 Main St"}

func products() *fakeStock { return &fakeStock{price: 5000} }

func TestSaga(t *testing.T) {
	tests := []struct {
		name        string
		stock       *fakeStock
		payments    *fakePayments
		wantHTTP    int
		wantStatus  string
		wantCode    string
		wantField   string
		wantRelease bool
		wantVoid    bool // the charge was attempted: the cancellation voids it at payment
		wantEvents  []string
	}{
		{
			name: "a paid order is confirmed", stock: products(), payments: &fakePayments{},
			wantHTTP: 201, wantStatus: Confirmed,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderConfirmed},
		},
		{
			name:     "missing stock cancels with 409 out_of_stock naming the item",
			stock:    &fakeStock{price: 5000, errs: map[string]error{"reserve": domain(ErrOutOfStock, 409, "out_of_stock")}},
			payments: &fakePayments{}, wantHTTP: 409, wantStatus: Cancelled, wantCode: CodeOutOfStock, wantField: "items[0].quantity", wantRelease: true,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderCancelled},
		},
		{
			name:     "an unknown product cancels with 400 naming the item",
			stock:    &fakeStock{errs: map[string]error{"reserve": domain(ErrUnknownProduct, 404, "unknown_product")}},
			payments: &fakePayments{}, wantHTTP: 400, wantStatus: Cancelled, wantCode: CodeUnknownProduct, wantField: "items[0].productId", wantRelease: true,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderCancelled},
		},
		{
			name: "a decline cancels with 402 and releases stock", stock: products(),
			payments: &fakePayments{errs: map[string]error{"charge": domain(ErrDeclined, 402, "payment_declined")}},
			wantHTTP: 402, wantStatus: Cancelled, wantCode: CodePaymentDeclined, wantRelease: true, wantVoid: true,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderCancelled},
		},
		{
			name: "an open payment breaker fails fast with nothing reserved", stock: products(),
			payments: &fakePayments{open: true}, wantHTTP: 503, wantStatus: Cancelled, wantCode: kit.CodeUnavailable, wantRelease: true,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderCancelled},
		},
		{
			name: "payment unreachable cancels with 503", stock: products(),
			payments: &fakePayments{errs: map[string]error{"charge": transport(ErrNotSent)}},
			wantHTTP: 503, wantStatus: Cancelled, wantCode: kit.CodeUnavailable, wantRelease: true, wantVoid: true,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderCancelled},
		},
		{
			name: "a timed-out charge that went through is confirmed after asking payment", stock: products(),
			payments: &fakePayments{errs: map[string]error{"charge": transport(ErrAmbiguous)}, status: PaymentCompleted},
			wantHTTP: 201, wantStatus: Confirmed,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderConfirmed},
		},
		{
			name: "a timed-out charge that did not happen is cancelled, and voided", stock: products(),
			payments: &fakePayments{errs: map[string]error{"charge": transport(ErrAmbiguous)}, status: PaymentNone},
			wantHTTP: 503, wantStatus: Cancelled, wantCode: kit.CodeUnavailable, wantRelease: true, wantVoid: true,
			wantEvents: []string{catalog.OrderCreated, catalog.OrderCancelled},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := kit.NewStore[record](kittest.Bus(t, "order").Bucket("orders"))
			pub := &kittest.Published{}
			s, err := NewOrders(st, tt.stock, tt.payments, pub, "test", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			o, status, err := s.Place(context.Background(), claims, "k1", req)
			if status != tt.wantHTTP || o.Status != tt.wantStatus {
				t.Fatalf("status %d order %s (%v), want %d %s", status, o.Status, err, tt.wantHTTP, tt.wantStatus)
			}
			if tt.wantCode != "" && (kit.AsError(err).Code != tt.wantCode || kit.AsError(err).Field != tt.wantField) {
				t.Fatalf("error %+v, want code %q field %q", kit.AsError(err), tt.wantCode, tt.wantField)
			}
			if got := tt.stock.called("release") > 0; got != tt.wantRelease {
				t.Errorf("released = %v, want %v", got, tt.wantRelease)
			}
			if !slices.Equal(pub.Types(), tt.wantEvents) {
				t.Errorf("events %v, want %v", pub.Types(), tt.wantEvents)
			}
			if tt.wantStatus == Confirmed && o.Total != 10000 {
				t.Errorf("total %d, want 10000", o.Total)
			}
			if tt.payments.open && tt.stock.called("reserve") > 0 {
				t.Error("reserved stock while payment was known down")
			}
			asked := tt.payments.called("status")
			if ambiguous := errors.Is(tt.payments.errs["charge"], ErrAmbiguous); (asked > 0) != ambiguous {
				t.Errorf("asked payment for the truth %d times after a charge that was ambiguous: %v", asked, ambiguous)
			}
			if voided := tt.payments.called("void") > 0; voided != tt.wantVoid {
				t.Errorf("voided = %v, want %v", voided, tt.wantVoid)
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
	s, _ := NewOrders(st, products(), &fakePayments{}, &kittest.Published{}, "new-instance", time.Minute)
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

// A POST retried while this instance still drives the order answers it as
// it stands (202) and leaves the driver alone: claiming the lease again
// would fence the driver off and stall the order until a sweep.
func TestARetryDuringTheDriveLeavesTheDriverItsLease(t *testing.T) {
	st, _ := kit.NewStore[record](kittest.Bus(t, "order").Bucket("orders"))
	pay := &fakePayments{status: PaymentCompleted}
	stock := &slowStock{fakeStock: products()}
	s, _ := NewOrders(st, stock, pay, &kittest.Published{}, "test", time.Minute)
	var retried int
	stock.during = func() { _, retried, _ = s.Place(context.Background(), claims, "k1", req) }
	o, status, err := s.Place(context.Background(), claims, "k1", req)
	if retried != http.StatusAccepted {
		t.Errorf("the retry answered %d, want 202 while the order is driven", retried)
	}
	if err != nil || status != http.StatusCreated || o.Status != Confirmed || pay.called("charge") != 1 {
		t.Fatalf("the first POST: %d %s %v, %d charges", status, o.Status, err, pay.called("charge"))
	}
}
