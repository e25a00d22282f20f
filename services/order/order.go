// Package order is the saga orchestrator: it places an order, reserves its
// items (product), charges it (payment), commits the reservations and
// confirms it, cancelling (release, refund) when it cannot go on, and
// refunds a confirmed order when staff ask.
//
// The saga is a state machine whose whole truth is one table, Transitions:
//
//	from     on            to       status     event written with it
//	-        place         reserve  pending    order.created
//	reserve  ok            charge
//	reserve  refused       release  cancelled
//	charge   ok            commit
//	charge   refused       release  cancelled
//	commit   ok            confirm  confirmed  order.confirmed
//	commit   refused       release  cancelled
//	confirm  ok            done
//	release  ok            refund
//	refund   ok            cancel              order.cancelled
//	cancel   ok            done
//	done     staff refund  repay    refunded
//	repay    ok            restock
//	restock  ok            close               order.refunded
//	close    ok            done
//
// A step that cannot end now (an upstream down, the instance stopping)
// has no outcome: the order stays at that step and is resumed there.
//
// Four rules make it safe against crashes, pauses and races:
//   - The record holds the step to run next, and every step is idempotent
//     per order id, so whoever resumes runs the step again from its start.
//   - Every transition is one compare-and-set on the order's record that
//     carries the driver's fencing token, its lease owner and generation.
//     A claim raises the generation; the lease is renewed while a step
//     runs, and a driver that lost it stops before its next side effect.
//   - Entering charge records that the charge is sent. Any cancellation
//     after that voids the order at payment (refund if completed, and a
//     marker that refuses a charge arriving later), asked until payment
//     answers, and order.cancelled says whether money was taken and
//     returned.
//   - Events are written to the record's outbox by the transition that
//     raises them and published after it is stored, with their id as
//     Nats-Msg-Id; the next transition drops what went out, and a resume
//     publishes what a crash left.
//
// Sagas whose lease expired are resumed by a sweep that runs at start-up
// and periodically.
package order

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
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

// Legacy owed steps: records written before the saga had steps listed the
// compensation they still owed; step() reads them.
const (
	oweRelease = "release"
	oweRefund  = "refund"
	oweRestock = "restock"
)

// record is what the orders bucket holds: the order (the API shape, which
// order.created carries) plus the saga's state.
type record struct {
	events.Order
	Email     string `json:"email,omitempty"`
	ErrStatus int    `json:"errStatus,omitempty"`
	// Step is the saga's next step (see Transitions).
	Step string `json:"step,omitempty"`
	// ChargeSent: the charge was (about to be) sent, so a cancellation
	// owes payment a void, refunding it if it completed.
	ChargeSent bool `json:"chargeSent,omitempty"`
	// Money is, once a cancellation is settled, what happened to the
	// customer's money (MoneyNone, MoneyReturned).
	Money string `json:"money,omitempty"`
	// The lease: who drives the saga, under which generation, until when.
	LeaseOwner string    `json:"leaseOwner,omitempty"`
	LeaseGen   uint64    `json:"leaseGen,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil"`
	// Outbox holds the events raised by transitions and not yet published.
	Outbox []outboxEvent `json:"outbox,omitempty"`
	// Owed is read from records written before Step (see step).
	Owed []string `json:"owed,omitempty"`
	// RefundedBy is the member of staff who refunded the order.
	RefundedBy string `json:"refundedBy,omitempty"`
	// RequestHash identifies the request that placed the order, so that
	// its Idempotency-Key cannot be reused for a different one.
	RequestHash string `json:"requestHash,omitempty"`
}

// step is the record's next step; records from before Step say it with
// their status and what they owed.
func (r *record) step() string {
	if r.Step != "" {
		return r.Step
	}
	owes := func(s string) bool { return slices.Contains(r.Owed, s) }
	switch {
	case r.Status == Pending:
		return StepReserve
	case r.Status == Cancelled && owes(oweRelease):
		return StepRelease
	case r.Status == Cancelled && owes(oweRefund):
		r.ChargeSent = true
		return StepRefund
	case r.Status == Refunded && owes(oweRefund):
		return StepRepay
	case r.Status == Refunded && owes(oweRestock):
		return StepRestock
	}
	return StepDone
}

func (r *record) done() bool { return r.step() == StepDone && len(r.Outbox) == 0 }

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

// newRecord builds the record of a new order, leased to owner, as the
// saga's entry row (OnPlace) has it: pending, at its first step, with
// order.created in its outbox.
func newRecord(id string, c *kit.Claims, req PlaceRequest, owner string, now time.Time, lease time.Duration) record {
	row, _ := next("", OnPlace)
	items := make([]events.Item, len(req.Items))
	copy(items, req.Items)
	r := record{
		Order: events.Order{
			ID: id, UserID: c.Subject, Status: row.Status, Items: items,
			PaymentMethod: req.PaymentMethod, ShippingAddress: strings.TrimSpace(req.ShippingAddress),
			History:   []events.Change{{Status: row.Status, At: now}},
			CreatedAt: now, UpdatedAt: now,
		},
		Email:       c.Email,
		Step:        row.To,
		LeaseOwner:  owner,
		LeaseGen:    1,
		LeaseUntil:  now.Add(lease),
		RequestHash: RequestHash(req),
	}
	if ev, err := eventOf(row.Event, &r); err == nil {
		r.Outbox = []outboxEvent{ev}
	}
	return r
}

func (r *record) transition(status, reason string, now time.Time) {
	r.Status = status
	r.UpdatedAt = now
	r.History = append(r.History, events.Change{Status: status, At: now, Reason: reason})
}

// outcome is how the order ended, for order.confirmed and order.cancelled.
func (r *record) outcome() events.OrderOutcome {
	return events.OrderOutcome{ID: r.ID, UserID: r.UserID, Email: r.Email, Status: r.Status, Items: r.Items,
		Total: r.Total, PaymentID: r.PaymentID, Error: r.Error, Money: r.Money}
}

var errLeased = errors.New("saga leased by another instance")
