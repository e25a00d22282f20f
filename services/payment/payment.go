// Package payment charges and refunds orders. A charge is idempotent per
// order id: the payments bucket is keyed by it, so a retried or replayed
// charge returns the first outcome instead of taking money twice.
package payment

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
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

// Payment is the API shape and the stored record.
type Payment struct {
	ID         string     `json:"id"`
	OrderID    string     `json:"orderId"`
	UserID     string     `json:"userId"`
	Amount     int64      `json:"amount"`
	Method     string     `json:"method"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	RefundedAt *time.Time `json:"refundedAt,omitempty"`
}

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

// Publisher sends events; *kit.Bus is one.
type Publisher interface {
	Publish(ctx context.Context, typ, id, subject string, data any) error
}

// Ledger holds the payment logic.
type Ledger struct {
	store *kit.Store[Payment]
	pub   Publisher
	now   func() time.Time
}

// NewLedger refuses nil dependencies.
func NewLedger(store *kit.Store[Payment], pub Publisher) (*Ledger, error) {
	if store == nil || pub == nil {
		return nil, errors.New("payment: NewLedger needs a store and a publisher")
	}
	return &Ledger{store: store, pub: pub, now: time.Now}, nil
}

// Charge takes the money, or records a decline. Repeating it returns the
// first outcome (created false) and republishes its event, in case the
// first attempt stopped between recording and publishing.
func (l *Ledger) Charge(ctx context.Context, req ChargeRequest) (Payment, bool, error) {
	if err := req.Validate(); err != nil {
		return Payment{}, false, err
	}
	p := Payment{ID: IDFor(req.OrderID), OrderID: req.OrderID, UserID: req.UserID, Amount: req.Amount,
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
			return Payment{}, false, err
		}
		if prev.Amount != req.Amount || prev.UserID != req.UserID || prev.Method != req.Method {
			return prev, false, kit.Errorf(http.StatusConflict, CodeIdempotencyMismatch,
				"order %s was already charged with other details", req.OrderID)
		}
		p = prev
	} else if err != nil {
		return Payment{}, false, err
	}
	typ := catalog.PaymentCompleted
	switch p.Status {
	case Declined:
		typ = catalog.PaymentFailed
	case Refunded:
		return p, created, nil
	}
	if err := l.pub.Publish(ctx, typ, kit.EventID(typ, p.ID), "payments/"+p.ID, p); err != nil {
		return Payment{}, false, kit.Unavailable("payment recorded, event not published: %v", err)
	}
	return p, created, nil
}

// ByOrder lists the payments of an order: none or one.
func (l *Ledger) ByOrder(ctx context.Context, orderID string) ([]Payment, error) {
	if !kit.ValidID(orderID) {
		return nil, kit.Invalid("orderId", "orderId must be 1-64 letters, digits, '-' or '_'")
	}
	p, _, err := l.store.Get(ctx, orderID)
	if errors.Is(err, kit.ErrNotFound) {
		return []Payment{}, nil
	}
	if err != nil {
		return nil, err
	}
	return []Payment{p}, nil
}

// Refund gives a completed payment back. Refunding twice is a no-op.
func (l *Ledger) Refund(ctx context.Context, id string) (Payment, error) {
	orderID, ok := strings.CutPrefix(id, "pay_")
	if !ok || !kit.ValidID(orderID) {
		return Payment{}, kit.NotFound("payment %q not found", id)
	}
	p, err := l.store.Update(ctx, orderID, func(p *Payment) error {
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
		return Payment{}, kit.NotFound("payment %q not found", id)
	}
	if err != nil {
		return Payment{}, err
	}
	if err := l.pub.Publish(ctx, catalog.PaymentRefunded, kit.EventID(catalog.PaymentRefunded, p.ID), "payments/"+p.ID, p); err != nil {
		return Payment{}, kit.Unavailable("refund recorded, event not published: %v", err)
	}
	return p, nil
}
