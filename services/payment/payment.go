// Package payment charges and refunds orders. A charge is idempotent per
// order id: the payments bucket is keyed by it, so a retried or replayed
// charge returns the first outcome instead of taking money twice.
//
// Only order charges and refunds, through internal routes the gateway never
// exposes; a customer may only read the payment of their own order. A staff
// refund is an order operation (order's POST /orders/{id}/refund), which
// calls Refund here.
package payment

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Payment statuses.
const (
	Completed = "completed"
	Declined  = "declined"
	Refunded  = "refunded"
)

// Decline rules of the simulated processor.
const (
	DeclinedMethod = "card_declined"
	MaxAmount      = 1_000_000
)

// Error codes.
const (
	CodeDeclined            = "payment_declined"
	CodeNotRefundable       = "not_refundable"
	CodeIdempotencyMismatch = "idempotency_mismatch"
)

// ChargeRequest is the body of POST /payments.
type ChargeRequest struct {
	OrderID string `json:"orderId"`
	UserID  string `json:"userId"`
	Amount  int64  `json:"amount"`
	Method  string `json:"method"`
}

// Validate checks a charge.
func (c ChargeRequest) Validate() error {
	switch {
	case !kit.ValidID(c.OrderID):
		return kit.Invalid("orderId", "orderId must be 1-64 letters, digits, '-' or '_'")
	case !kit.ValidID(c.UserID):
		return kit.Invalid("userId", "userId must be 1-64 letters, digits, '-' or '_'")
	case c.Amount <= 0:
		return kit.Invalid("amount", "amount must be positive, in minor units")
	case strings.TrimSpace(c.Method) == "" || len(c.Method) > 32:
		return kit.Invalid("method", "method must be 1-32 characters")
	}
	return nil
}

// IDFor is the payment id of an order: derived, so a refund by payment id
// finds the record keyed by order id without an index.
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
// first attempt stopped between recording and publishing.
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
		if prev.Amount != req.Amount || prev.UserID != req.UserID || prev.Method != req.Method {
			return prev, false, kit.Errorf(http.StatusConflict, CodeIdempotencyMismatch,
				"order %s was already charged with other details", req.OrderID)
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

// ByOrder lists the payments of an order: none or one.
func (l *Ledger) ByOrder(ctx context.Context, orderID string) ([]events.Payment, error) {
	if !kit.ValidID(orderID) {
		return nil, kit.Invalid("orderId", "orderId must be 1-64 letters, digits, '-' or '_'")
	}
	p, _, err := l.store.Get(ctx, orderID)
	if errors.Is(err, kit.ErrNotFound) {
		return []events.Payment{}, nil
	}
	if err != nil {
		return nil, err
	}
	return []events.Payment{p}, nil
}

// Of returns the payment of order orderID if userID made it. Another
// user's payment and a missing one answer the same 404, so a customer
// learns nothing about orders that are not theirs.
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
	if errors.Is(err, kit.ErrNotFound) || (err == nil && p.UserID != userID) {
		return events.Payment{}, notFound
	}
	return p, err
}

// Refund gives a completed payment back. Refunding twice is a no-op.
func (l *Ledger) Refund(ctx context.Context, id string) (events.Payment, error) {
	orderID, ok := strings.CutPrefix(id, "pay_")
	if !ok || !kit.ValidID(orderID) {
		return events.Payment{}, kit.NotFound("payment %q not found", id)
	}
	p, err := l.store.Update(ctx, orderID, func(p *events.Payment) error {
		switch p.Status {
		case Refunded:
			return kit.ErrNoChange
		case Declined:
			return kit.Errorf(http.StatusConflict, CodeNotRefundable, "payment %s was declined", id)
		}
		now := l.now().UTC()
		p.Status, p.RefundedAt = Refunded, &now
		return nil
	})
	if errors.Is(err, kit.ErrNotFound) {
		return events.Payment{}, kit.NotFound("payment %q not found", id)
	}
	if err != nil {
		return events.Payment{}, err
	}
	if err := l.pub.Publish(ctx, kit.EventID(catalog.PaymentRefunded, p.ID), "payments/"+p.ID, events.PaymentRefunded{Payment: p}); err != nil {
		return events.Payment{}, kit.Unavailable("refund recorded, event not published: %v", err)
	}
	return p, nil
}
