package order

import (
	"context"

	paymentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/payment/v1"
	productv1 "github.com/switchboard-dev/switchboard/gen/switchboard/product/v1"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// stockReasons and paymentReasons map the upstreams' domain codes (the
// google.rpc.ErrorInfo reasons their .proto files declare) to the ports'
// errors.
var (
	stockReasons = kit.Reasons{
		"unknown_product":       ErrUnknownProduct,
		"out_of_stock":          ErrOutOfStock,
		"reservation_released":  ErrReservationReleased,
		"reservation_committed": ErrReservationCommitted,
		"reservation_not_found": ErrReservationNotFound,
		"restock_exceeds_sale":  ErrRestockExceedsSale,
		"idempotency_mismatch":  ErrIdempotencyMismatch,
	}
	paymentReasons = kit.Reasons{
		"payment_declined":     ErrDeclined,
		"order_voided":         ErrOrderVoided,
		"payment_not_found":    ErrPaymentNotFound,
		"not_refundable":       ErrNotRefundable,
		"idempotency_mismatch": ErrIdempotencyMismatch,
	}
)

// GRPCStock is Stock over product's internal gRPC API
// (switchboard.product.v1.Stock), through a kit.GRPCClient: mutual TLS to
// product's identity, a deadline per attempt, retries after transport
// failures (every method is idempotent), a breaker and metrics per method.
type GRPCStock struct {
	cc *kit.GRPCClient
	c  productv1.StockClient
}

// NewGRPCStock wraps the client of product.
func NewGRPCStock(cc *kit.GRPCClient) *GRPCStock {
	return &GRPCStock{cc: cc, c: productv1.NewStockClient(cc)}
}

func (s *GRPCStock) Open() bool { return s.cc.Open() }

func (s *GRPCStock) Reserve(ctx context.Context, productID, orderID string, quantity int64) (Reservation, error) {
	resp, err := s.c.Reserve(ctx, &productv1.ReserveRequest{ProductId: productID, OrderId: orderID, Quantity: quantity})
	if err != nil {
		return Reservation{}, stockReasons.Wrap(err)
	}
	r, err := reservationOf(resp.GetReservation())
	r.Replayed = resp.GetReplayed()
	return r, err
}

func (s *GRPCStock) Commit(ctx context.Context, productID, orderID string) error {
	_, err := s.c.Commit(ctx, &productv1.CommitRequest{ProductId: productID, OrderId: orderID})
	return stockReasons.Wrap(err)
}

func (s *GRPCStock) Release(ctx context.Context, productID, orderID string) error {
	_, err := s.c.Release(ctx, &productv1.ReleaseRequest{ProductId: productID, OrderId: orderID})
	return stockReasons.Wrap(err)
}

func (s *GRPCStock) Restock(ctx context.Context, productID, orderID string, quantity int64) error {
	_, err := s.c.Restock(ctx, &productv1.RestockRequest{ProductId: productID, OrderId: orderID, Quantity: quantity})
	return stockReasons.Wrap(err)
}

func (s *GRPCStock) Level(ctx context.Context, productID string) (StockLevel, error) {
	resp, err := s.c.GetStock(ctx, &productv1.GetStockRequest{ProductId: productID})
	if err != nil {
		return StockLevel{}, stockReasons.Wrap(err)
	}
	l := resp.GetStock()
	return StockLevel{ProductID: l.GetProductId(), Available: l.GetAvailable(), Reserved: l.GetReserved(), Sold: l.GetSold(), Restocked: l.GetRestocked()}, nil
}

var reservationStates = map[productv1.ReservationState]ReservationState{
	productv1.ReservationState_RESERVATION_STATE_RESERVED:  Reserving,
	productv1.ReservationState_RESERVATION_STATE_COMMITTED: Sold,
	productv1.ReservationState_RESERVATION_STATE_RELEASED:  Given,
}

// reservationOf reads product's answer; one without a state the saga
// knows is no answer it can act on.
func reservationOf(r *productv1.Reservation) (Reservation, error) {
	st, ok := reservationStates[r.GetState()]
	if !ok {
		return Reservation{}, &unreadable{e: kit.Unavailable("product answered a reservation in state %v", r.GetState())}
	}
	return Reservation{ProductID: r.GetProductId(), OrderID: r.GetOrderId(), Quantity: r.GetQuantity(), UnitPrice: r.GetUnitPrice(), State: st}, nil
}

// GRPCPayments is Payments over payment's internal gRPC API
// (switchboard.payment.v1.Payments), through a kit.GRPCClient. Every method
// is idempotent per order, so each is retried after a transport failure;
// an attempt that may have reached payment makes the outcome ErrAmbiguous.
type GRPCPayments struct {
	cc *kit.GRPCClient
	c  paymentv1.PaymentsClient
}

// NewGRPCPayments wraps the client of payment.
func NewGRPCPayments(cc *kit.GRPCClient) *GRPCPayments {
	return &GRPCPayments{cc: cc, c: paymentv1.NewPaymentsClient(cc)}
}

func (p *GRPCPayments) Open() bool { return p.cc.Open() }

func (p *GRPCPayments) Charge(ctx context.Context, c ChargeRequest) (Payment, error) {
	resp, err := p.c.Charge(ctx, &paymentv1.ChargeRequest{OrderId: c.OrderID, UserId: c.UserID, Amount: c.Amount, Method: c.Method})
	if err != nil {
		return Payment{}, paymentReasons.Wrap(err)
	}
	return paymentOf(resp.GetPayment())
}

func (p *GRPCPayments) Status(ctx context.Context, orderID string) (Payment, error) {
	resp, err := p.c.GetStatus(ctx, &paymentv1.GetStatusRequest{OrderId: orderID})
	if err != nil {
		return Payment{}, paymentReasons.Wrap(err)
	}
	st, err := statusOf(resp.GetStatus())
	if err != nil {
		return Payment{}, err
	}
	if resp.GetPayment() == nil {
		return Payment{OrderID: orderID, ID: resp.GetPaymentId(), Status: st}, nil
	}
	pay, err := paymentOf(resp.GetPayment())
	pay.Status = st
	return pay, err
}

func (p *GRPCPayments) Refund(ctx context.Context, orderID, reason string) (Payment, error) {
	resp, err := p.c.Refund(ctx, &paymentv1.RefundRequest{OrderId: orderID, Reason: reason})
	if err != nil {
		return Payment{}, paymentReasons.Wrap(err)
	}
	return paymentOf(resp.GetPayment())
}

func (p *GRPCPayments) Void(ctx context.Context, orderID, reason string) (VoidOutcome, error) {
	resp, err := p.c.Void(ctx, &paymentv1.VoidRequest{OrderId: orderID, Reason: reason})
	if err != nil {
		return VoidOutcome{}, paymentReasons.Wrap(err)
	}
	st, err := statusOf(resp.GetStatus())
	return VoidOutcome{Status: st, MoneyTaken: resp.GetMoneyTaken()}, err
}

var paymentStatuses = map[paymentv1.PaymentStatus]PaymentStatus{
	paymentv1.PaymentStatus_PAYMENT_STATUS_NONE:      PaymentNone,
	paymentv1.PaymentStatus_PAYMENT_STATUS_COMPLETED: PaymentCompleted,
	paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED:  PaymentDeclined,
	paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED:  PaymentRefunded,
	paymentv1.PaymentStatus_PAYMENT_STATUS_VOIDED:    PaymentVoided,
}

// statusOf reads payment's status. UNSPECIFIED (or a status added since) is
// no answer: reading it as "none" could skip a refund, so it is an
// ambiguous failure, and the saga asks again.
func statusOf(s paymentv1.PaymentStatus) (PaymentStatus, error) {
	st, ok := paymentStatuses[s]
	if !ok {
		return 0, &unreadable{e: kit.Unavailable("payment answered status %v", s)}
	}
	return st, nil
}

func paymentOf(p *paymentv1.Payment) (Payment, error) {
	st, err := statusOf(p.GetStatus())
	if err != nil {
		return Payment{}, err
	}
	return Payment{ID: p.GetId(), OrderID: p.GetOrderId(), Amount: p.GetAmount(), Status: st, DeclineReason: p.GetDeclineReason()}, nil
}

// unreadable is an answer the saga cannot act on: a 503 that is
// ErrAmbiguous, since the call reached the upstream.
type unreadable struct{ e *kit.Error }

func (u *unreadable) Error() string   { return u.e.Error() }
func (u *unreadable) Unwrap() []error { return []error{u.e, kit.ErrAmbiguous} }
