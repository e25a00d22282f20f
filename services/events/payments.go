package events

import (
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Payment is a payment as the payment service stores and answers it, and
// as its three events carry it.
type Payment struct {
	ID      string `json:"id"`
	OrderID string `json:"orderId"`
	UserID  string `json:"userId"`
	Amount  int64  `json:"amount"`
	Method  string `json:"method"`
	Status  string `json:"status"`
	// Reason says why a charge was declined.
	Reason string `json:"reason,omitempty"`
	// RefundReason says why the money was given back.
	RefundReason string     `json:"refundReason,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
	RefundedAt   *time.Time `json:"refundedAt,omitempty"`
}

// PaymentCompleted is the data of payment.completed.
type PaymentCompleted struct{ Payment }

// PaymentFailed is the data of payment.failed: a declined charge.
type PaymentFailed struct{ Payment }

// PaymentRefunded is the data of payment.refunded.
type PaymentRefunded struct{ Payment }

func (PaymentCompleted) EventType() string { return catalog.PaymentCompleted }
func (PaymentFailed) EventType() string    { return catalog.PaymentFailed }
func (PaymentRefunded) EventType() string  { return catalog.PaymentRefunded }
