// Package order is the saga orchestrator: it persists an order as pending,
// reserves each item (product), charges (payment), commits the reservations
// and marks the order confirmed, compensating on a decline or missing stock.
//
// Crash safety comes from three rules. Every step is idempotent, keyed by
// the order id, so a saga can always be driven again from the start. A
// decision to cancel is persisted before compensating, with the work still
// owed listed in the record, so compensation is resumed, never forgotten.
// And the instance driving a saga holds a lease in the order record (taken
// by compare-and-set); pending sagas whose lease expired are resumed by a
// sweep that runs at start-up and periodically, so two replicas never drive
// one order at once.
//
// Staff refund a confirmed order (POST /orders/{id}/refund, admin only) the
// same way: the decision, refunded with the refund and restock owed, is
// persisted first, then paid, and the sweep resumes what a crash
// interrupted. An order ends confirmed, cancelled or refunded:
//
//	pending ──► confirmed ──► refunded   (staff; money back, goods restocked or not)
//	   └──────► cancelled                (decline, no stock, failure; reservations released)
package order

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Statuses.
const (
	Pending   = "pending"
	Confirmed = "confirmed"
	Cancelled = "cancelled"
	Refunded  = "refunded"
)

// Error codes returned to clients.
const (
	CodeOutOfStock      = "out_of_stock"
	CodePaymentDeclined = "payment_declined"
	CodeUnknownProduct  = "unknown_product"
	CodeNotRefundable   = "not_refundable"
	// CodeKeyReused is a 422: the Idempotency-Key placed another order.
	CodeKeyReused = "idempotency_key_reused"
)

// Owed compensation steps, persisted with a cancellation or a refund.
const (
	oweRelease = "release"
	oweRefund  = "refund"  // ask payment; refund if the charge completed
	oweRestock = "restock" // return what the order bought to the stock
)

// record is what the orders bucket holds: the order (the API shape, which
// order.created carries) plus saga bookkeeping.
type record struct {
	events.Order
	Email      string    `json:"email,omitempty"`
	ErrStatus  int       `json:"errStatus,omitempty"`
	LeaseOwner string    `json:"leaseOwner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil"`
	Owed       []string  `json:"owed,omitempty"`
	// RefundedBy is the member of staff who refunded the order.
	RefundedBy string `json:"refundedBy,omitempty"`
	// RequestHash identifies the request that placed the order, so that
	// its Idempotency-Key cannot be reused for a different one.
	RequestHash string `json:"requestHash,omitempty"`
}

func (r *record) done() bool { return r.Status != Pending && len(r.Owed) == 0 }

// PlaceRequest is the body of POST /orders.
type PlaceRequest struct {
	Items           []events.Item `json:"items"`
	PaymentMethod   string        `json:"paymentMethod"`
	ShippingAddress string        `json:"shippingAddress"`
}

// MaxItems bounds an order's lines.
const MaxItems = 50

// Validate checks an order request; prices come from the catalog, never
// from the client.
func (p PlaceRequest) Validate() error {
	if len(p.Items) == 0 || len(p.Items) > MaxItems {
		return kit.Invalid("items", "an order has 1-%d items", MaxItems)
	}
	seen := map[string]bool{}
	for i, it := range p.Items {
		switch {
		case !kit.ValidID(it.ProductID):
			return kit.Invalid(fmt.Sprintf("items[%d].productId", i), "productId must be 1-64 letters, digits, '-' or '_'")
		case seen[it.ProductID]:
			return kit.Invalid(fmt.Sprintf("items[%d].productId", i), "each product appears once; use quantity")
		case it.Quantity <= 0 || it.Quantity > 1000:
			return kit.Invalid(fmt.Sprintf("items[%d].quantity", i), "quantity must be between 1 and 1000")
		case it.Price != 0:
			return kit.Invalid(fmt.Sprintf("items[%d].price", i), "prices come from the catalog; leave price out")
		}
		seen[it.ProductID] = true
	}
	switch {
	case strings.TrimSpace(p.PaymentMethod) == "" || len(p.PaymentMethod) > 32:
		return kit.Invalid("paymentMethod", "paymentMethod must be 1-32 characters")
	case strings.TrimSpace(p.ShippingAddress) == "" || len(p.ShippingAddress) > 500:
		return kit.Invalid("shippingAddress", "shippingAddress must be 1-500 characters")
	}
	return nil
}

// IDFor derives the order id from the caller and the Idempotency-Key, so a
// retried POST finds the order it created instead of placing another.
func IDFor(userID, idempotencyKey string) string {
	h := sha256.Sum256([]byte(userID + "\x00" + idempotencyKey))
	return hex.EncodeToString(h[:10])
}

func key(userID, orderID string) string { return userID + "." + orderID }

// Outcome maps a saga's end to an HTTP status.
func Outcome(r *record) (int, error) {
	switch r.Status {
	case Confirmed:
		return http.StatusCreated, nil
	case Refunded:
		return http.StatusOK, nil
	case Cancelled:
		if r.Error != nil {
			e := *r.Error
			e.Status = r.ErrStatus
			if e.Status == 0 {
				e.Status = http.StatusConflict
			}
			return e.Status, &e
		}
		return http.StatusConflict, kit.Errorf(http.StatusConflict, kit.CodeConflict, "order cancelled")
	}
	return http.StatusAccepted, nil
}

// RequestHash identifies a placed order's request: a retry with the same
// Idempotency-Key must carry the same one.
func RequestHash(req PlaceRequest) string {
	b, _ := json.Marshal(req)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// ErrKeyReused is returned when an Idempotency-Key comes back with a
// different request than the one that placed its order.
var ErrKeyReused = &kit.Error{Status: http.StatusUnprocessableEntity, Code: CodeKeyReused, Field: kit.HeaderIdempotencyKey,
	Message: "this Idempotency-Key placed an order with a different request; use a new key for a new order"}

// ErrMissingKey is returned when POST /orders has no Idempotency-Key.
var ErrMissingKey = &kit.Error{Status: http.StatusBadRequest, Code: kit.CodeInvalid, Field: kit.HeaderIdempotencyKey,
	Message: "an Idempotency-Key header (1-128 characters) is required"}

// newRecord builds the pending record of a new order, leased to owner.
func newRecord(id string, c *kit.Claims, req PlaceRequest, owner string, now time.Time, lease time.Duration) record {
	items := make([]events.Item, len(req.Items))
	copy(items, req.Items)
	return record{
		Order: events.Order{
			ID: id, UserID: c.Subject, Status: Pending, Items: items,
			PaymentMethod: req.PaymentMethod, ShippingAddress: strings.TrimSpace(req.ShippingAddress),
			History:   []events.Change{{Status: Pending, At: now}},
			CreatedAt: now, UpdatedAt: now,
		},
		Email:       c.Email,
		LeaseOwner:  owner,
		LeaseUntil:  now.Add(lease),
		RequestHash: RequestHash(req),
	}
}

func (r *record) transition(status, reason string, now time.Time) {
	r.Status = status
	r.UpdatedAt = now
	r.History = append(r.History, events.Change{Status: status, At: now, Reason: reason})
}

// outcome is how the order ended, for order.confirmed and order.cancelled.
func (r *record) outcome() events.OrderOutcome {
	return events.OrderOutcome{ID: r.ID, UserID: r.UserID, Email: r.Email, Status: r.Status, Items: r.Items,
		Total: r.Total, PaymentID: r.PaymentID, Error: r.Error}
}

var errLeased = errors.New("saga leased by another instance")
