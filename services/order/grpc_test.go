package order

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	paymentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/payment/v1"
	productv1 "github.com/switchboard-dev/switchboard/gen/switchboard/product/v1"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// scriptedStock and scriptedPayments are gRPC servers of product's and
// payment's APIs whose answers a test sets: the real kit.GRPCServer serves
// them (mutual TLS, the catalog's policy, *kit.Error → status), so the
// saga's typed clients meet real statuses, deadlines and connection
// failures. A nil func answers success.
type scriptedStock struct {
	productv1.UnimplementedStockServer
	reserve  func(context.Context) error
	reserves atomic.Int32
	releases atomic.Int32
	err      func(method string) error // every method but Reserve's answer, when set
}

func (s *scriptedStock) Reserve(ctx context.Context, req *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
	s.reserves.Add(1)
	if s.reserve != nil {
		if err := s.reserve(ctx); err != nil {
			return nil, err
		}
	}
	return &productv1.ReserveResponse{Reservation: &productv1.Reservation{ProductId: req.GetProductId(), OrderId: req.GetOrderId(),
		Quantity: req.GetQuantity(), UnitPrice: 5000, State: productv1.ReservationState_RESERVATION_STATE_RESERVED}}, nil
}

func (s *scriptedStock) fail(method string) error {
	if s.err != nil {
		return s.err(method)
	}
	return nil
}

func (s *scriptedStock) Commit(_ context.Context, req *productv1.CommitRequest) (*productv1.CommitResponse, error) {
	return &productv1.CommitResponse{Reservation: &productv1.Reservation{State: productv1.ReservationState_RESERVATION_STATE_COMMITTED}}, s.fail("Commit")
}

func (s *scriptedStock) Release(_ context.Context, req *productv1.ReleaseRequest) (*productv1.ReleaseResponse, error) {
	s.releases.Add(1)
	return &productv1.ReleaseResponse{Reservation: &productv1.Reservation{State: productv1.ReservationState_RESERVATION_STATE_RELEASED}}, s.fail("Release")
}

func (s *scriptedStock) Restock(_ context.Context, req *productv1.RestockRequest) (*productv1.RestockResponse, error) {
	return &productv1.RestockResponse{Stock: &productv1.StockLevel{ProductId: req.GetProductId()}}, s.fail("Restock")
}

func (s *scriptedStock) GetStock(_ context.Context, req *productv1.GetStockRequest) (*productv1.GetStockResponse, error) {
	return &productv1.GetStockResponse{Stock: &productv1.StockLevel{ProductId: req.GetProductId(), Available: 7, Sold: 2, Restocked: 1}}, s.fail("GetStock")
}

type scriptedPayments struct {
	paymentv1.UnimplementedPaymentsServer
	charge   func(context.Context) error
	charges  atomic.Int32
	status   paymentv1.PaymentStatus
	statuses atomic.Int32
	voids    atomic.Int32
	err      func(method string) error // Refund's and Void's answer, when set
}

func (s *scriptedPayments) Charge(ctx context.Context, req *paymentv1.ChargeRequest) (*paymentv1.ChargeResponse, error) {
	s.charges.Add(1)
	if s.charge != nil {
		if err := s.charge(ctx); err != nil {
			return nil, err
		}
	}
	return &paymentv1.ChargeResponse{Payment: &paymentv1.Payment{Id: "pay_" + req.GetOrderId(), OrderId: req.GetOrderId(),
		Amount: req.GetAmount(), Status: paymentv1.PaymentStatus_PAYMENT_STATUS_COMPLETED}}, nil
}

func (s *scriptedPayments) GetStatus(_ context.Context, req *paymentv1.GetStatusRequest) (*paymentv1.GetStatusResponse, error) {
	s.statuses.Add(1)
	st := s.status
	if st == paymentv1.PaymentStatus_PAYMENT_STATUS_UNSPECIFIED {
		st = paymentv1.PaymentStatus_PAYMENT_STATUS_NONE
	}
	resp := &paymentv1.GetStatusResponse{Status: st}
	if st == paymentv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
		resp.PaymentId = "pay_" + req.GetOrderId()
		resp.Payment = &paymentv1.Payment{Id: resp.PaymentId, OrderId: req.GetOrderId(), Status: st}
	}
	return resp, nil
}

func (s *scriptedPayments) Refund(_ context.Context, req *paymentv1.RefundRequest) (*paymentv1.RefundResponse, error) {
	if s.err != nil {
		if err := s.err("Refund"); err != nil {
			return nil, err
		}
	}
	return &paymentv1.RefundResponse{Payment: &paymentv1.Payment{Id: "pay_" + req.GetOrderId(), Status: paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED}}, nil
}

func (s *scriptedPayments) Void(_ context.Context, req *paymentv1.VoidRequest) (*paymentv1.VoidResponse, error) {
	s.voids.Add(1)
	if s.err != nil {
		if err := s.err("Void"); err != nil {
			return nil, err
		}
	}
	return &paymentv1.VoidResponse{Status: paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED, MoneyTaken: true}, nil
}

// serveGRPC serves register's API as service, with its identity from the
// test platform's CA and its policy from the catalog, until the test ends
// or stop is called.
func serveGRPC(t *testing.T, service string, register func(*kit.GRPCServer)) (addr string, stop func()) {
	t.Helper()
	p := kittest.Platform(t)
	s, err := kit.NewGRPCServer(p.Identity(t, service), kit.NewMetrics(service), kit.GRPCPolicyFor(service), nil)
	if err != nil {
		t.Fatal(err)
	}
	register(s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String(), s.Stop
}

// orderClient is order's client of upstream at addr: a short timeout, so
// a hung call becomes ambiguous quickly, and a breaker that opens after
// breakAfter consecutive transport failures.
func orderClient(t *testing.T, upstream, addr string, attempts int, breakAfter uint32) *kit.GRPCClient {
	t.Helper()
	o := kit.GRPCClientOptions{ClientOptions: kit.ClientOptions{Timeout: 300 * time.Millisecond, Attempts: attempts,
		Backoff: time.Millisecond, BreakerFailures: breakAfter, BreakerOpenFor: time.Hour}}
	c, err := kit.NewGRPCClient(upstream, addr, kittest.Platform(t).Identity(t, "order"), kit.NewMetrics("order"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// sagaOverGRPC is a saga whose ports are the typed gRPC clients of the
// scripted servers.
func sagaOverGRPC(t *testing.T, stock *scriptedStock, pay *scriptedPayments, attempts int, breakAfter uint32) (*Orders, *kittest.Published, func()) {
	t.Helper()
	stockAddr, stopStock := serveGRPC(t, "product", func(s *kit.GRPCServer) { productv1.RegisterStockServer(s, stock) })
	payAddr, _ := serveGRPC(t, "payment", func(s *kit.GRPCServer) { paymentv1.RegisterPaymentsServer(s, pay) })
	st, _ := kit.NewStore[record](kittest.Bus(t, "order").Bucket("orders"))
	pub := &kittest.Published{}
	o, err := NewOrders(st, NewGRPCStock(orderClient(t, "product", stockAddr, attempts, breakAfter)),
		NewGRPCPayments(orderClient(t, "payment", payAddr, attempts, breakAfter)), pub, "test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return o, pub, stopStock
}

// The saga's paths through the typed gRPC clients: the upstreams' domain
// errors and transport failures arrive as the ports' errors, and the saga
// decides on those alone.
func TestSagaOverGRPC(t *testing.T) {
	hang := func(record *atomic.Bool) func(context.Context) error {
		return func(ctx context.Context) error {
			record.Store(true) // the charge happened, then its answer is lost
			<-ctx.Done()
			return ctx.Err()
		}
	}
	t.Run("out of stock cancels with 409 naming the item, and releases", func(t *testing.T) {
		stock := &scriptedStock{reserve: func(context.Context) error {
			return &kit.Error{Status: http.StatusConflict, Code: "out_of_stock", Field: "quantity", Message: "only 1 left"}
		}}
		pay := &scriptedPayments{}
		s, pub, _ := sagaOverGRPC(t, stock, pay, 3, 5)
		o, status, err := s.Place(context.Background(), claims, "k1", req)
		if e := kit.AsError(err); status != http.StatusConflict || o.Status != Cancelled || e.Code != CodeOutOfStock || e.Field != "items[0].quantity" {
			t.Fatalf("%d %s %+v", status, o.Status, e)
		}
		if stock.reserves.Load() != 1 || stock.releases.Load() != 1 || pay.charges.Load() != 0 {
			t.Errorf("reserves %d releases %d charges %d: a domain answer is never retried, the reservation is released, nothing charged",
				stock.reserves.Load(), stock.releases.Load(), pay.charges.Load())
		}
		if !slices.Equal(pub.Types(), []string{catalog.OrderCreated, catalog.OrderCancelled}) {
			t.Errorf("events %v", pub.Types())
		}
	})
	t.Run("a decline cancels with 402", func(t *testing.T) {
		pay := &scriptedPayments{charge: func(context.Context) error {
			return kit.Errorf(http.StatusPaymentRequired, "payment_declined", "payment declined: card declined")
		}}
		stock := &scriptedStock{}
		s, _, _ := sagaOverGRPC(t, stock, pay, 3, 5)
		o, status, err := s.Place(context.Background(), claims, "k1", req)
		if e := kit.AsError(err); status != http.StatusPaymentRequired || o.Status != Cancelled || e.Code != CodePaymentDeclined {
			t.Fatalf("%d %s %+v", status, o.Status, e)
		}
		if pay.charges.Load() != 1 || pay.statuses.Load() != 0 || stock.releases.Load() != 1 {
			t.Errorf("charges %d, status asked %d, releases %d", pay.charges.Load(), pay.statuses.Load(), stock.releases.Load())
		}
	})
	t.Run("a charge whose answer is lost is ambiguous; GetStatus says completed, and the order is confirmed", func(t *testing.T) {
		var charged atomic.Bool
		pay := &scriptedPayments{charge: hang(&charged), status: paymentv1.PaymentStatus_PAYMENT_STATUS_COMPLETED}
		s, pub, _ := sagaOverGRPC(t, &scriptedStock{}, pay, 2, 5)
		o, status, err := s.Place(context.Background(), claims, "k1", req)
		if err != nil || status != http.StatusCreated || o.Status != Confirmed || o.PaymentID != "pay_"+o.ID {
			t.Fatalf("%d %+v %v", status, o, err)
		}
		if !charged.Load() || pay.charges.Load() != 2 || pay.statuses.Load() != 1 {
			t.Errorf("charges %d (Charge is idempotent: retried once), status asked %d", pay.charges.Load(), pay.statuses.Load())
		}
		if !slices.Equal(pub.Types(), []string{catalog.OrderCreated, catalog.OrderConfirmed}) {
			t.Errorf("events %v", pub.Types())
		}
	})
	t.Run("a charge whose answer is lost and that payment never saw cancels, and the order is voided at payment", func(t *testing.T) {
		var charged atomic.Bool
		pay := &scriptedPayments{charge: hang(&charged), status: paymentv1.PaymentStatus_PAYMENT_STATUS_NONE}
		stock := &scriptedStock{}
		s, _, _ := sagaOverGRPC(t, stock, pay, 1, 5)
		o, status, err := s.Place(context.Background(), claims, "k1", req)
		if e := kit.AsError(err); status != http.StatusServiceUnavailable || o.Status != Cancelled || e.Code != kit.CodeUnavailable {
			t.Fatalf("%d %s %+v", status, o.Status, e)
		}
		if pay.statuses.Load() != 1 || pay.voids.Load() != 1 || stock.releases.Load() != 1 {
			t.Errorf("status asked %d times (after the charge), voids %d (for the refund owed), releases %d", pay.statuses.Load(), pay.voids.Load(), stock.releases.Load())
		}
	})
	t.Run("product down: the first order fails with 503, the breaker opens, the next fails fast with nothing sent", func(t *testing.T) {
		stock, pay := &scriptedStock{}, &scriptedPayments{}
		s, _, stopStock := sagaOverGRPC(t, stock, pay, 1, 1)
		stopStock()
		o, status, err := s.Place(context.Background(), claims, "k1", req)
		if e := kit.AsError(err); status != http.StatusServiceUnavailable || o.Status != Cancelled || e.Code != kit.CodeUnavailable {
			t.Fatalf("first order: %d %s %+v", status, o.Status, e)
		}
		if !s.stock.Open() {
			t.Fatal("the breaker did not open on a refused connection")
		}
		o, status, err = s.Place(context.Background(), claims, "k2", req)
		if e := kit.AsError(err); status != http.StatusServiceUnavailable || o.Status != Cancelled || e.Message != "product is unavailable (circuit open)" {
			t.Fatalf("second order: %d %s %+v", status, o.Status, e)
		}
		if stock.reserves.Load() != 0 || pay.charges.Load() != 0 {
			t.Errorf("reserves %d charges %d with product down", stock.reserves.Load(), pay.charges.Load())
		}
	})
}

// Every reason product's and payment's .proto files declare reaches the
// saga as its port's error, with the upstream's code and field.
func TestTypedClientsMapEveryDeclaredReason(t *testing.T) {
	stockReason, payReason := make(chan error, 1), make(chan error, 1)
	answer := func(ch chan error) func(string) error {
		return func(string) error {
			select {
			case err := <-ch:
				return err
			default:
				return nil
			}
		}
	}
	stock := &scriptedStock{err: answer(stockReason), reserve: func(context.Context) error { return answer(stockReason)("Reserve") }}
	pay := &scriptedPayments{err: answer(payReason), charge: func(context.Context) error { return answer(payReason)("Charge") }}
	stockAddr, _ := serveGRPC(t, "product", func(s *kit.GRPCServer) { productv1.RegisterStockServer(s, stock) })
	payAddr, _ := serveGRPC(t, "payment", func(s *kit.GRPCServer) { paymentv1.RegisterPaymentsServer(s, pay) })
	st, p := NewGRPCStock(orderClient(t, "product", stockAddr, 1, 5)), NewGRPCPayments(orderClient(t, "payment", payAddr, 1, 5))
	ctx := context.Background()

	tests := []struct {
		method   string
		status   int
		reason   string
		sentinel error
		call     func() error
	}{
		{"Reserve", 404, "unknown_product", ErrUnknownProduct, func() error { _, err := st.Reserve(ctx, "p", "o", 1); return err }},
		{"Reserve", 409, "out_of_stock", ErrOutOfStock, func() error { _, err := st.Reserve(ctx, "p", "o", 1); return err }},
		{"Reserve", 409, "idempotency_mismatch", ErrIdempotencyMismatch, func() error { _, err := st.Reserve(ctx, "p", "o", 1); return err }},
		{"Reserve", 409, "reservation_released", ErrReservationReleased, func() error { _, err := st.Reserve(ctx, "p", "o", 1); return err }},
		{"Commit", 404, "reservation_not_found", ErrReservationNotFound, func() error { return st.Commit(ctx, "p", "o") }},
		{"Commit", 409, "reservation_released", ErrReservationReleased, func() error { return st.Commit(ctx, "p", "o") }},
		{"Release", 409, "reservation_committed", ErrReservationCommitted, func() error { return st.Release(ctx, "p", "o") }},
		{"Restock", 404, "reservation_not_found", ErrReservationNotFound, func() error { return st.Restock(ctx, "p", "o", 1) }},
		{"Restock", 409, "restock_exceeds_sale", ErrRestockExceedsSale, func() error { return st.Restock(ctx, "p", "o", 1) }},
		{"Restock", 409, "idempotency_mismatch", ErrIdempotencyMismatch, func() error { return st.Restock(ctx, "p", "o", 1) }},
		{"GetStock", 404, "unknown_product", ErrUnknownProduct, func() error { _, err := st.Level(ctx, "p"); return err }},
		{"Charge", 402, "payment_declined", ErrDeclined, func() error { _, err := p.Charge(ctx, ChargeRequest{"o", "u", 1, "card"}); return err }},
		{"Charge", 409, "idempotency_mismatch", ErrIdempotencyMismatch, func() error { _, err := p.Charge(ctx, ChargeRequest{"o", "u", 1, "card"}); return err }},
		{"Charge", 409, "order_voided", ErrOrderVoided, func() error { _, err := p.Charge(ctx, ChargeRequest{"o", "u", 1, "card"}); return err }},
		{"Refund", 404, "payment_not_found", ErrPaymentNotFound, func() error { _, err := p.Refund(ctx, "o", "r"); return err }},
		{"Refund", 409, "not_refundable", ErrNotRefundable, func() error { _, err := p.Refund(ctx, "o", "r"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.reason, func(t *testing.T) {
			ch := stockReason
			if tt.method == "Charge" || tt.method == "Refund" {
				ch = payReason
			}
			ch <- &kit.Error{Status: tt.status, Code: tt.reason, Field: "quantity", Message: tt.reason}
			err := tt.call()
			if e := kit.AsError(err); !errors.Is(err, tt.sentinel) || e.Code != tt.reason || e.Field != "quantity" || e.Status != http.StatusConflict && e.Status != tt.status {
				t.Fatalf("got %v (%+v), want %v with code %s and field quantity", err, e, tt.sentinel, tt.reason)
			}
			if errors.Is(err, ErrAmbiguous) || errors.Is(err, ErrNotSent) {
				t.Fatalf("a domain answer reads as a transport failure: %v", err)
			}
		})
	}
	// Success answers are read through.
	if l, err := st.Level(ctx, "p1"); err != nil || l != (StockLevel{ProductID: "p1", Available: 7, Sold: 2, Restocked: 1}) {
		t.Fatalf("Level: %+v %v", l, err)
	}
	if v, err := p.Void(ctx, "o", "cancelled"); err != nil || v != (VoidOutcome{Status: PaymentRefunded, MoneyTaken: true}) {
		t.Fatalf("Void: %+v %v", v, err)
	}
}

// An answer the saga cannot read (a status added to the .proto since, or
// none) is never taken for "no charge": it is an ambiguous failure.
func TestAnUnreadablePaymentStatusIsAmbiguous(t *testing.T) {
	pay := &scriptedPayments{status: paymentv1.PaymentStatus(99)}
	addr, _ := serveGRPC(t, "payment", func(s *kit.GRPCServer) { paymentv1.RegisterPaymentsServer(s, pay) })
	_, err := NewGRPCPayments(orderClient(t, "payment", addr, 1, 5)).Status(context.Background(), "o1")
	if !errors.Is(err, ErrAmbiguous) || kit.AsError(err).Status != http.StatusServiceUnavailable {
		t.Fatalf("status 99 read as %v", err)
	}
}
