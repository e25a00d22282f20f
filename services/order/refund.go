package order

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// RefundRequest is the body of POST /orders/{id}/refund, a staff refund.
// Restock has no default: staff say whether the goods come back.
type RefundRequest struct {
	Restock *bool  `json:"restock"`
	Reason  string `json:"reason"`
}

// Validate checks a refund request.
func (r RefundRequest) Validate() error {
	switch {
	case r.Restock == nil:
		return kit.Invalid("restock", "restock is required: true returns the goods to stock, false does not")
	case strings.TrimSpace(r.Reason) == "" || len(r.Reason) > 500:
		return kit.Invalid("reason", "reason must be 1-500 characters")
	}
	return nil
}

// Refund is a staff refund of a confirmed order: the order becomes
// refunded, its payment is refunded, and what it bought goes back to stock
// if req.Restock says so. The decision and the work it owes are stored
// before any of it is done, so a crash is finished by the sweep.
//
// Refunding a refunded order answers it as it stands, whatever the new
// request says: the first decision holds. Only a confirmed order can be
// refunded; anything else is a 409 not_refundable.
//
// The status is 200 once the money is back and the stock restocked, 202
// while some of it is still owed (an upstream down): the sweep finishes it,
// and order.refunded goes out then.
func (s *Orders) Refund(ctx context.Context, staff *kit.Claims, id string, req RefundRequest) (events.Order, int, error) {
	if err := req.Validate(); err != nil {
		return events.Order{}, 0, err
	}
	k, err := s.keyOf(ctx, id)
	if err != nil {
		return events.Order{}, 0, err
	}
	reason := strings.TrimSpace(req.Reason)
	var decided bool
	row, _ := next(StepDone, OnStaffRefund)
	rec, rev, err := s.store.UpdateAt(ctx, k, record{}, 0, func(r *record) error {
		decided = false
		switch {
		case r.Status == Refunded:
			return kit.ErrNoChange
		case r.Status != Confirmed || r.step() != row.From:
			return &kit.Error{Status: http.StatusConflict, Code: CodeNotRefundable, Field: "id",
				Message: fmt.Sprintf("order %s is %s; only a confirmed order can be refunded", id, r.Status)}
		}
		now := s.now().UTC()
		r.transition(row.Status, reason, now)
		r.Step = row.To
		r.Refund = &events.Refund{Restock: *req.Restock, Reason: reason}
		r.RefundedBy = staff.Subject
		r.LeaseOwner, r.LeaseUntil = s.owner, now.Add(s.lease)
		r.LeaseGen++
		decided = true
		return nil
	})
	if err != nil {
		return events.Order{}, 0, err
	}
	if !decided && !rec.done() {
		// Refunded before and not finished: finish it, unless another
		// instance holds it.
		if claimed, claimedAt, err := s.claim(ctx, k); err == nil {
			rec, rev, decided = claimed, claimedAt, true
		}
	}
	if decided {
		rec = s.run(ctx, k, rec, rev)
	}
	if !rec.done() {
		return rec.Order, http.StatusAccepted, nil
	}
	return rec.Order, http.StatusOK, nil
}

// keyOf finds an order's key from its id alone: staff do not know whose it
// is, and order keys are <userId>.<orderId>.
func (s *Orders) keyOf(ctx context.Context, id string) (string, error) {
	if !kit.ValidID(id) {
		return "", kit.NotFound("order %q not found", id)
	}
	keys, err := s.store.Keys(ctx, "*."+id)
	if err != nil {
		return "", err
	}
	switch len(keys) {
	case 0:
		return "", kit.NotFound("order %q not found", id)
	case 1:
		return keys[0], nil
	}
	return "", fmt.Errorf("order id %s names %d orders", id, len(keys))
}
