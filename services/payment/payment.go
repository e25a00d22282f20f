// Package payment charges and refunds orders. One record per order, in the
// payments bucket keyed by the order id, holds its charge, refund and void,
// and every change to it is a compare-and-set: a retried or replayed charge
// returns the first outcome instead of taking money twice, and a charge
// racing a void of the same order loses or is refunded, never left taken.
//
// Only order charges, refunds and voids, through the internal gRPC API
// (switchboard.payment.v1.Payments), which admits order's identity only; a
// customer may only read the payment of their own order, over REST. A
// staff refund is an order operation (order's POST /orders/{id}/refund),
// which calls Refund here.
package payment

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Payment statuses. Voided is the record of an order closed before any
// charge reached the ledger: it is stored, never published.
const (
	Completed = "completed"
	Declined  = "declined"
	Refunded  = "refunded"
	Voided    = "voided"
)

// Decline rules of the simulated processor.
const (
	DeclinedMethod = "card_declined"
	MaxAmount      = 1_000_000
)

// Error codes (switchboard.payment.v1.Payments declares which method
// answers which).
const (
	CodeDeclined            = "payment_declined"
	CodeNotRefundable       = "not_refundable"
	CodeIdempotencyMismatch = "idempotency_mismatch"
	CodeOrderVoided         = "order_voided"
	CodePaymentNotFound     = "payment_not_found"
)

// ChargeRequest is a charge, as order sends it. Field names in errors are
// the gRPC request's.
type ChargeRequest struct {
	OrderID string
	UserID  string
	Amount  int64
	Method  string
}

// Validate checks a charge.
func (c ChargeRequest) Validate() error {
	switch {
	case !kit.ValidID(c.OrderID):
		return kit.Invalid("order_id", "order_id must be 1-64 letters, digits, '-' or '_'")
	case !kit.ValidID(c.UserID):
		return kit.Invalid("user_id", "user_id must be 1-64 letters, digits, '-' or '_'")
	case c.Amount <= 0:
		return kit.Invalid("amount", "amount must be positive, in minor units")
	case strings.TrimSpace(c.Method) == "" || len(c.Method) > 32:
		return kit.Invalid("method", "method must be 1-32 characters")
	}
	return nil
}

func validOrderID(id string) error {
	if !kit.ValidID(id) {
		return kit.Invalid("order_id", "order_id must be 1-64 letters, digits, '-' or '_'")
	}
	return nil
}

func validReason(reason string) error {
	if strings.TrimSpace(reason) == "" || len(reason) > 200 {
		return kit.Invalid("reason", "reason must be 1-200 characters")
	}
	return nil
}

// IDFor is the payment id of an order: derived from it, as the record is
// keyed by it.
func IDFor(orderID string) string { return "pay_" + orderID }

// Ledger holds the payment logic. Its records are events.Payment, the API
// shape its events carry.
type Ledger struct {
	store *kit.Store[events.Payment]
	pub   kit.Publisher
	now   func() time.Time
}

// NewLedger refuses nil dependencies.
func NewLedger(store *kit.Store[events.Payment], pub kit.Publisher) (*Ledger, error) {
	if store == nil || pub == nil {
		return nil, errors.New("payment: NewLedger needs a store and a publisher")
	}
	return &Ledger{store: store, pub: pub, now: time.Now}, nil
}

// Charge takes the money, or records a decline. Repeating it returns the
// first outcome (created false) and republishes its event, in case the
// first attempt stopped between recording and publishing. An order voided
// first is refused with order_voided: nothing is taken.
func (l *Ledger) Charge(ctx context.Context, req ChargeRequest) (events.Payment, bool, error) {
	if err := req.Validate(); err != nil {
		return events.Payment{}, false, err
	}
	p := events.Payment{ID: IDFor(req.OrderID), OrderID: req.OrderID, UserID: req.UserID, Amount: req.Amount,
		Method: req.Method, Status: Completed, CreatedAt: l.now().UTC()}
	switch {
	case req.Method == DeclinedMethod:
		p.Status, p.Reason = Declined, "card declined"
	case req.Amount > MaxAmount:
		p.Status, p.Reason = Declined, "amount over the limit"
	}
	created := true
	if _, err := l.store.Create(ctx, req.OrderID, p); errors.Is(err, kit.ErrExists) {
		created = false
		prev, _, err := l.store.Get(ctx, req.OrderID)
		if err != nil {
			return events.Payment{}, false, err
		}
		if prev.Status == Voided {
			return events.Payment{}, false, kit.Errorf(http.StatusConflict, CodeOrderVoided,
				"order %s was voided; nothing was charged", req.OrderID)
		}
		if field := differs(prev, req); field != "" {
			return prev, false, &kit.Error{Status: http.StatusConflict, Code: CodeIdempotencyMismatch, Field: field,
				Message: fmt.Sprintf("order %s was already charged with another %s", req.OrderID, field)}
		}
		p = prev
	} else if err != nil {
		return events.Payment{}, false, err
	}
	var ev kit.Payload = events.PaymentCompleted{Payment: p}
	switch p.Status {
	case Declined:
		ev = events.PaymentFailed{Payment: p}
	case Refunded:
		return p, created, nil
	}
	if err := l.pub.Publish(ctx, kit.EventID(ev.EventType(), p.ID), "payments/"+p.ID, ev); err != nil {
		return events.Payment{}, false, kit.Unavailable("payment recorded, event not published: %v", err)
	}
	return p, created, nil
}

// differs names the first field of req that the recorded charge p does not
// share, "" when they agree.
func differs(p events.Payment, req ChargeRequest) string {
	switch {
	case p.Amount != req.Amount:
		return "amount"
	case p.UserID != req.UserID:
		return "user_id"
	case p.Method != req.Method:
		return "method"
	}
	return ""
}

// Status is where an order's money stands: its record, or found false
// when no charge or void ever reached the ledger.
func (l *Ledger) Status(ctx context.Context, orderID string) (p events.Payment, found bool, err error) {
	if err := validOrderID(orderID); err != nil {
		return events.Payment{}, false, err
	}
	p, _, err = l.store.Get(ctx, orderID)
	if errors.Is(err, kit.ErrNotFound) {
		return events.Payment{}, false, nil
	}
	return p, err == nil, err
}

// Of returns the payment of order orderID if userID made it. Another
// user's payment, a voided order and a missing one answer the same 404, so
// a customer learns nothing about orders that are not theirs.
func (l *Ledger) Of(ctx context.Context, userID, orderID string) (events.Payment, error) {
	notFound := &kit.Error{Status: http.StatusNotFound, Code: kit.CodeNotFound, Field: "orderId",
		Message: "no payment of yours for order " + orderID}
	if orderID == "" {
		return events.Payment{}, kit.Invalid("orderId", "orderId is required: the order whose payment to show")
	}
	if !kit.ValidID(orderID) {
		return events.Payment{}, notFound
	}
	p, _, err := l.store.Get(ctx, orderID)
	if errors.Is(err, kit.ErrNotFound) || (err == nil && (p.UserID != userID || p.Status == Voided)) {
		return events.Payment{}, notFound
	}
	return p, err
}

// Refund gives an order's completed charge back. Refunding twice returns
// the refunded payment and republishes its event (in case the first
// attempt stopped before publishing); the first reason stays.
func (l *Ledger) Refund(ctx context.Context, orderID, reason string) (events.Payment, error) {
	if err := validOrderID(orderID); err != nil {
		return events.Payment{}, err
	}
	if err := validReason(reason); err != nil {
		return events.Payment{}, err
	}
	p, err := l.store.Update(ctx, orderID, func(p *events.Payment) error {
		switch p.Status {
		case Refunded:
			return kit.ErrNoChange
		case Declined:
			return kit.Errorf(http.StatusConflict, CodeNotRefundable, "the charge of order %s was declined", orderID)
		case Voided:
			return kit.Errorf(http.StatusConflict, CodeNotRefundable, "order %s was voided before any charge", orderID)
		}
		l.refund(p, reason)
		return nil
	})
	if errors.Is(err, kit.ErrNotFound) {
		return events.Payment{}, kit.Errorf(http.StatusNotFound, CodePaymentNotFound, "order %s was never charged", orderID)
	}
	if err != nil {
		return events.Payment{}, err
	}
	return p, l.publishRefund(ctx, p)
}

func (l *Ledger) refund(p *events.Payment, reason string) {
	now := l.now().UTC()
	p.Status, p.RefundedAt, p.RefundReason = Refunded, &now, strings.TrimSpace(reason)
}

func (l *Ledger) publishRefund(ctx context.Context, p events.Payment) error {
	if err := l.pub.Publish(ctx, kit.EventID(catalog.PaymentRefunded, p.ID), "payments/"+p.ID, events.PaymentRefunded{Payment: p}); err != nil {
		return kit.Unavailable("refund recorded, event not published: %v", err)
	}
	return nil
}

// Void closes an order's money for good, whatever happened before, in one
// compare-and-set on the order's record: with no charge yet, the record
// says voided and a later Charge is refused; a completed charge is
// refunded at once; a declined or refunded one stays as it is. moneyTaken
// reports whether the order had been charged (the money is then back).
// Voiding twice answers the same.
func (l *Ledger) Void(ctx context.Context, orderID, reason string) (p events.Payment, moneyTaken bool, err error) {
	if err := validOrderID(orderID); err != nil {
		return events.Payment{}, false, err
	}
	if err := validReason(reason); err != nil {
		return events.Payment{}, false, err
	}
	p, err = l.store.Upsert(ctx, orderID, func(p *events.Payment, exists bool) error {
		if !exists {
			*p = events.Payment{ID: IDFor(orderID), OrderID: orderID, Status: Voided, RefundReason: strings.TrimSpace(reason), CreatedAt: l.now().UTC()}
			return nil
		}
		if p.Status != Completed {
			return kit.ErrNoChange
		}
		l.refund(p, reason)
		return nil
	})
	if err != nil {
		return events.Payment{}, false, err
	}
	if p.Status == Refunded {
		// Republished on a repeat too: the first void may have stopped
		// before publishing. The event id makes it once.
		if err := l.publishRefund(ctx, p); err != nil {
			return events.Payment{}, true, err
		}
	}
	return p, p.Status == Refunded, nil
}
