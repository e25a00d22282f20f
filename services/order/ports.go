package order

import (
	"context"
	"errors"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// The saga reaches product and payment through two ports, Stock and
// Payments. Their implementations (GRPCStock and GRPCPayments, over the
// internal gRPC API) return the domain errors below, matched with
// errors.Is; the *kit.Error they wrap stays reachable (kit.AsError) with
// the upstream's code, message and field. The saga never sees an HTTP or
// gRPC status.
//
// Every method is idempotent per order id on the upstream's side, so a
// call may be repeated after any failure: the upstream answers with the
// first call's outcome.

// Domain errors of the stock port.
var (
	// ErrUnknownProduct: product has no such product.
	ErrUnknownProduct = errors.New("unknown product")
	// ErrOutOfStock: fewer units are available than the order asks for.
	ErrOutOfStock = errors.New("out of stock")
	// ErrReservationReleased: the order's reservation was released (or
	// released before any reserve arrived), so it can be neither reserved
	// again nor committed.
	ErrReservationReleased = errors.New("reservation released")
	// ErrReservationCommitted: the reservation is sold; it cannot be
	// released (a refund restocks it instead).
	ErrReservationCommitted = errors.New("reservation committed")
	// ErrReservationNotFound: the order reserved (or bought) nothing of
	// this product.
	ErrReservationNotFound = errors.New("reservation not found")
	// ErrRestockExceedsSale: a restock of more units than the order bought.
	ErrRestockExceedsSale = errors.New("restock exceeds the sale")
)

// Domain errors of the payments port.
var (
	// ErrDeclined: the charge was refused; nothing was taken.
	ErrDeclined = errors.New("payment declined")
	// ErrOrderVoided: the order's money was closed by Void before this
	// charge; nothing was taken.
	ErrOrderVoided = errors.New("order voided")
	// ErrPaymentNotFound: the order was never charged.
	ErrPaymentNotFound = errors.New("payment not found")
	// ErrNotRefundable: the charge was declined or the order voided.
	ErrNotRefundable = errors.New("not refundable")
)

// Errors of both ports.
var (
	// ErrIdempotencyMismatch: the order already made this call with other
	// details (another quantity, amount, user or method).
	ErrIdempotencyMismatch = errors.New("idempotency mismatch")
	// ErrAmbiguous: the call may have happened upstream (a timeout after
	// it was sent, a server failure). Ask before assuming: Payments.Status
	// for a charge. Every transport failure is a 503 dependency_unavailable
	// *kit.Error that matches this or ErrNotSent.
	ErrAmbiguous = kit.ErrAmbiguous
	// ErrNotSent: the call certainly did not reach the upstream.
	ErrNotSent = kit.ErrNotSent
	// ErrBreakerOpen: the upstream's breaker is open; nothing was sent (it
	// also matches ErrNotSent).
	ErrBreakerOpen = kit.ErrBreakerOpen
)

// Stock is what order asks of product.
type Stock interface {
	// Reserve holds quantity units of productID for orderID, at the price
	// of the moment. Repeating it returns the reservation as it stands
	// (Replayed). ErrUnknownProduct, ErrOutOfStock,
	// ErrIdempotencyMismatch, ErrReservationReleased.
	Reserve(ctx context.Context, productID, orderID string, quantity int64) (Reservation, error)
	// Commit turns the order's reservation into a sale.
	// ErrReservationNotFound, ErrReservationReleased.
	Commit(ctx context.Context, productID, orderID string) error
	// Release gives the order's reservation back, or records it released
	// when there is none, so a late Reserve is refused.
	// ErrReservationCommitted.
	Release(ctx context.Context, productID, orderID string) error
	// Restock returns quantity units the order bought to the available
	// stock, once per order. ErrReservationNotFound,
	// ErrRestockExceedsSale, ErrIdempotencyMismatch.
	Restock(ctx context.Context, productID, orderID string, quantity int64) error
	// Level reads a product's stock. ErrUnknownProduct.
	Level(ctx context.Context, productID string) (StockLevel, error)
	// Open reports whether product's breaker is open: calls would fail
	// fast with ErrBreakerOpen.
	Open() bool
}

// ReservationState is where a reservation stands.
type ReservationState int

const (
	Reserving ReservationState = iota + 1 // units held for the order
	Sold                                  // committed
	Given                                 // released
)

// Reservation is the units of one product held for one order.
type Reservation struct {
	ProductID, OrderID string
	Quantity           int64
	// UnitPrice is the price of one unit when reserved, in minor units.
	UnitPrice int64
	State     ReservationState
	// Replayed: the reservation existed before this call.
	Replayed bool
}

// StockLevel is a product's stock at one instant.
type StockLevel struct {
	ProductID                            string
	Available, Reserved, Sold, Restocked int64
}

// Payments is what order asks of payment.
type Payments interface {
	// Charge takes the order's total. Repeating it returns the first
	// outcome. ErrDeclined, ErrOrderVoided, ErrIdempotencyMismatch,
	// ErrAmbiguous (ask Status).
	Charge(ctx context.Context, c ChargeRequest) (Payment, error)
	// Status is the truth about an order's money: a Payment whose Status
	// is PaymentNone when no charge reached payment.
	Status(ctx context.Context, orderID string) (Payment, error)
	// Refund gives a completed charge back; refunding a refunded one
	// returns it. ErrPaymentNotFound, ErrNotRefundable.
	Refund(ctx context.Context, orderID, reason string) (Payment, error)
	// Void closes the order's money for good: a completed charge is
	// refunded at once, and a charge arriving later is refused with
	// ErrOrderVoided.
	Void(ctx context.Context, orderID, reason string) (VoidOutcome, error)
	// Open reports whether payment's breaker is open.
	Open() bool
}

// ChargeRequest is a charge of an order.
type ChargeRequest struct {
	OrderID, UserID string
	// Amount in minor units (cents).
	Amount int64
	Method string
}

// PaymentStatus is where an order's money stands.
type PaymentStatus int

const (
	PaymentNone      PaymentStatus = iota + 1 // no charge reached payment
	PaymentCompleted                          // money taken
	PaymentDeclined                           // refused; nothing taken
	PaymentRefunded                           // taken and given back
	PaymentVoided                             // voided before any charge; none will be accepted
)

func (s PaymentStatus) String() string {
	switch s {
	case PaymentNone:
		return "none"
	case PaymentCompleted:
		return "completed"
	case PaymentDeclined:
		return "declined"
	case PaymentRefunded:
		return "refunded"
	case PaymentVoided:
		return "voided"
	}
	return "unknown"
}

// Payment is an order's charge as payment records it.
type Payment struct {
	ID, OrderID string
	Amount      int64
	Status      PaymentStatus
	// DeclineReason says why a charge was refused, for people.
	DeclineReason string
}

// VoidOutcome is what a Void found and did.
type VoidOutcome struct {
	// Status is PaymentVoided (nothing had been charged), PaymentRefunded
	// (money had been taken, and is back) or PaymentDeclined.
	Status PaymentStatus
	// MoneyTaken: the order had been charged; with PaymentRefunded the
	// money is returned.
	MoneyTaken bool
}
