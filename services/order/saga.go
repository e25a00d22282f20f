package order

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Orders drives orders through the saga. It keeps nothing but a cache of
// finished keys in memory; everything that matters is in the orders bucket.
type Orders struct {
	store    *kit.Store[record]
	stock    Stock
	payments Payments
	pub      kit.Publisher
	owner    string
	lease    time.Duration
	now      func() time.Time

	mu       sync.Mutex
	inflight map[string]bool // keys this instance is driving right now
	finished map[string]bool // keys seen cancelled or refunded with nothing owed: final
}

// NewOrders refuses nil dependencies. owner identifies this instance in
// leases; lease is how long a saga may run before another instance may
// resume it.
func NewOrders(store *kit.Store[record], stock Stock, payments Payments, pub kit.Publisher, owner string, lease time.Duration) (*Orders, error) {
	if store == nil || stock == nil || payments == nil || pub == nil || owner == "" || lease <= 0 {
		return nil, errors.New("order: NewOrders needs a store, the stock and payments ports, a publisher, an owner and a lease")
	}
	return &Orders{store: store, stock: stock, payments: payments, pub: pub, owner: owner, lease: lease,
		now: time.Now, inflight: map[string]bool{}, finished: map[string]bool{}}, nil
}

// Place creates the order for the caller (or finds the one this
// Idempotency-Key created) and drives it as far as it goes.
func (s *Orders) Place(ctx context.Context, c *kit.Claims, idemKey string, req PlaceRequest) (events.Order, int, error) {
	if idemKey == "" || len(idemKey) > 128 {
		return events.Order{}, 0, ErrMissingKey
	}
	if err := req.Validate(); err != nil {
		return events.Order{}, 0, err
	}
	id := IDFor(c.Subject, idemKey)
	k := key(c.Subject, id)
	rec := newRecord(id, c, req, s.owner, s.now().UTC(), s.lease)
	if _, err := s.store.Create(ctx, k, rec); errors.Is(err, kit.ErrExists) {
		// A retry, or the key reused for another order (orders from before
		// the hash have none, and pass).
		if cur, _, gerr := s.store.Get(ctx, k); gerr != nil {
			return events.Order{}, 0, gerr
		} else if cur.RequestHash != "" && cur.RequestHash != rec.RequestHash {
			return events.Order{}, 0, ErrKeyReused
		}
		// A retry: report the order as it stands, driving it if nobody is.
		if r, err := s.claim(ctx, k); err == nil {
			rec = r
		} else if errors.Is(err, errLeased) || errors.Is(err, kit.ErrNoChange) {
			cur, _, gerr := s.store.Get(ctx, k)
			if gerr != nil {
				return events.Order{}, 0, gerr
			}
			status, oerr := Outcome(&cur)
			return cur.Order, status, oerr
		} else {
			return events.Order{}, 0, err
		}
	} else if err != nil {
		return events.Order{}, 0, err
	}
	final := s.run(ctx, k, rec)
	status, err := Outcome(&final)
	return final.Order, status, err
}

// claim takes the lease of an unfinished saga whose lease has expired. A
// saga with nothing left to do answers kit.ErrNoChange, with its record.
func (s *Orders) claim(ctx context.Context, k string) (record, error) {
	now := s.now().UTC()
	var finished bool
	rec, err := s.store.Update(ctx, k, func(r *record) error {
		finished = r.done()
		if finished {
			return kit.ErrNoChange
		}
		if r.LeaseOwner != "" && r.LeaseOwner != s.owner && now.Before(r.LeaseUntil) {
			return errLeased
		}
		r.LeaseOwner, r.LeaseUntil = s.owner, now.Add(s.lease)
		return nil
	})
	if err == nil && finished {
		// Update hides ErrNoChange; without it a finished order would be
		// compensated again, announcing order.cancelled for a confirmed one.
		return rec, kit.ErrNoChange
	}
	return rec, err
}

// run drives or compensates a leased record once per instance at a time.
func (s *Orders) run(ctx context.Context, k string, rec record) record {
	s.mu.Lock()
	if s.inflight[k] {
		s.mu.Unlock()
		return rec
	}
	s.inflight[k] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, k)
		s.mu.Unlock()
	}()
	if rec.Status == Pending {
		return s.drive(ctx, k, rec)
	}
	return s.compensate(ctx, k, rec)
}

// stopped reports whether the saga must stop where it is because this
// instance is shutting down; it will be resumed from the store.
func stopped(ctx context.Context) bool { return ctx.Err() != nil }

// drive runs the forward steps. Each returns early, leaving the order
// pending for a resume, when the instance is stopping.
func (s *Orders) drive(ctx context.Context, k string, rec record) record {
	log := kit.Logger(ctx).With("order", rec.ID)
	if err := s.pub.Publish(ctx, kit.EventID(catalog.OrderCreated, rec.ID), "orders/"+rec.ID, events.OrderCreated{Order: rec.Order}); err != nil {
		log.Warn("order.created not published; will resume", "err", err)
		return rec
	}
	// Fail fast, with nothing reserved, while an upstream is known down.
	for _, up := range []struct {
		name string
		open bool
	}{{"product", s.stock.Open()}, {"payment", s.payments.Open()}} {
		if up.open {
			return s.cancel(ctx, k, rec, http.StatusServiceUnavailable, kit.Unavailable("%s is unavailable (circuit open)", up.name), false)
		}
	}

	// 1. Reserve each item.
	items := slices.Clone(rec.Items)
	var total int64
	for i, it := range items {
		res, err := s.stock.Reserve(ctx, it.ProductID, rec.ID, it.Quantity)
		if stopped(ctx) {
			return rec
		}
		switch {
		case err == nil:
			items[i].Price = res.UnitPrice
			total += res.UnitPrice * it.Quantity
		case errors.Is(err, ErrUnknownProduct):
			e := kit.Invalid(fmt.Sprintf("items[%d].productId", i), "no product %q", it.ProductID)
			e.Code = CodeUnknownProduct
			return s.cancel(ctx, k, rec, http.StatusBadRequest, e, false)
		case errors.Is(err, ErrOutOfStock):
			e := *kit.AsError(err)
			e.Field = fmt.Sprintf("items[%d].quantity", i)
			return s.cancel(ctx, k, rec, http.StatusConflict, &e, false)
		case errors.Is(err, ErrAmbiguous) || errors.Is(err, ErrNotSent):
			// A reserve that may have happened is released with the rest.
			return s.cancel(ctx, k, rec, http.StatusServiceUnavailable, kit.AsError(err), false)
		default:
			return s.cancel(ctx, k, rec, http.StatusConflict, kit.AsError(err), false)
		}
	}

	// 2. Charge.
	pay, err := s.payments.Charge(ctx, ChargeRequest{OrderID: rec.ID, UserID: rec.UserID, Amount: total, Method: rec.PaymentMethod})
	if stopped(ctx) {
		return rec
	}
	var paymentID string
	switch {
	case err == nil:
		paymentID = pay.ID
	case errors.Is(err, ErrDeclined):
		e := *kit.AsError(err)
		e.Code = CodePaymentDeclined
		return s.cancel(ctx, k, rec, http.StatusPaymentRequired, &e, false)
	case errors.Is(err, ErrAmbiguous):
		// The charge may have happened: ask payment before deciding.
		truth, qerr := s.payments.Status(ctx, rec.ID)
		if stopped(ctx) {
			return rec
		}
		switch {
		case qerr != nil:
			// Cannot know: cancel, and owe a refund check until payment answers.
			return s.cancel(ctx, k, rec, http.StatusServiceUnavailable, kit.AsError(err), true)
		case truth.Status == PaymentCompleted:
			paymentID = truth.ID
		case truth.Status == PaymentDeclined:
			return s.cancel(ctx, k, rec, http.StatusPaymentRequired, kit.Errorf(http.StatusPaymentRequired, CodePaymentDeclined, "payment declined"), false)
		default:
			return s.cancel(ctx, k, rec, http.StatusServiceUnavailable, kit.AsError(err), true)
		}
	case errors.Is(err, ErrNotSent):
		return s.cancel(ctx, k, rec, http.StatusServiceUnavailable, kit.AsError(err), false)
	default:
		// Payment refused the charge for another reason (a voided order, a
		// mismatch): nothing of this call was taken, but check anyway.
		return s.cancel(ctx, k, rec, http.StatusConflict, kit.AsError(err), true)
	}

	// 3. Commit the reservations. Money is taken: from here on we only go
	// forward, and a failure leaves the order pending for a resume.
	for _, it := range items {
		if err := s.stock.Commit(ctx, it.ProductID, rec.ID); err != nil {
			if !stopped(ctx) {
				log.Warn("commit failed; will resume", "product", it.ProductID, "err", err)
			}
			return rec
		}
	}

	// 4. Confirm: publish first, then persist, so a crash in between
	// republishes the same event id on resume.
	confirmed := rec
	confirmed.Items, confirmed.Total, confirmed.PaymentID = items, total, paymentID
	confirmed.transition(Confirmed, "", s.now().UTC())
	if err := s.pub.Publish(ctx, kit.EventID(catalog.OrderConfirmed, rec.ID), "orders/"+rec.ID, events.OrderConfirmed{OrderOutcome: confirmed.outcome()}); err != nil {
		log.Warn("order.confirmed not published; will resume", "err", err)
		return rec
	}
	out, err := s.store.Update(ctx, k, func(r *record) error {
		if r.Status != Pending {
			return kit.ErrNoChange
		}
		r.Items, r.Total, r.PaymentID = items, total, paymentID
		r.transition(Confirmed, "", s.now().UTC())
		r.LeaseOwner, r.LeaseUntil = "", time.Time{}
		return nil
	})
	if err != nil {
		log.Warn("confirm not persisted; will resume", "err", err)
		return rec
	}
	return out
}

// cancel persists the decision and what it owes, then compensates.
func (s *Orders) cancel(ctx context.Context, k string, rec record, status int, cause *kit.Error, checkRefund bool) record {
	e := *cause
	e.Status = 0
	owed := []string{oweRelease}
	if checkRefund {
		owed = append(owed, oweRefund)
	}
	out, err := s.store.Update(ctx, k, func(r *record) error {
		if r.Status != Pending {
			return kit.ErrNoChange
		}
		r.transition(Cancelled, e.Code, s.now().UTC())
		r.Error, r.ErrStatus, r.Owed = &e, status, owed
		return nil
	})
	if err != nil {
		kit.Logger(ctx).Warn("cancel not persisted; will resume", "order", rec.ID, "err", err)
		return rec
	}
	return s.compensate(ctx, k, out)
}

// compensate pays what a cancelled or refunded order owes: releases every
// reservation (idempotent, and a tombstone where none existed), refunds a
// charge that went through, and restocks what a refund takes back. What
// fails stays owed for the sweep; the order's event goes out once nothing
// is.
func (s *Orders) compensate(ctx context.Context, k string, rec record) record {
	log := kit.Logger(ctx).With("order", rec.ID)
	for _, owe := range rec.Owed {
		switch owe {
		case oweRelease:
			for _, it := range rec.Items {
				if err := s.stock.Release(ctx, it.ProductID, rec.ID); err != nil {
					log.Warn("release failed; will retry", "product", it.ProductID, "err", err)
					return rec
				}
			}
		case oweRefund:
			truth, err := s.payments.Status(ctx, rec.ID)
			if err != nil {
				log.Warn("payment status unknown; will retry", "err", err)
				return rec
			}
			switch {
			case truth.Status == PaymentCompleted:
				if _, err := s.payments.Refund(ctx, rec.ID, refundReason(rec)); err != nil {
					log.Warn("refund failed; will retry", "err", err)
					return rec
				}
			case rec.Status == Refunded && truth.Status != PaymentRefunded:
				// A confirmed order was paid for: payment lost track of it.
				log.Error("refunded order has no charge to refund", "payment", rec.PaymentID, "status", truth.Status)
			}
		case oweRestock:
			for _, it := range rec.Items {
				if err := s.stock.Restock(ctx, it.ProductID, rec.ID, it.Quantity); err != nil {
					log.Warn("restock failed; will retry", "product", it.ProductID, "err", err)
					return rec
				}
			}
		}
	}
	var ev kit.Payload = events.OrderCancelled{OrderOutcome: rec.outcome()}
	if rec.Status == Refunded {
		var decided events.Refund
		if rec.Refund != nil {
			decided = *rec.Refund
		}
		ev = events.OrderRefunded{OrderOutcome: rec.outcome(), Refund: decided}
	}
	if err := s.pub.Publish(ctx, kit.EventID(ev.EventType(), rec.ID), "orders/"+rec.ID, ev); err != nil {
		log.Warn(ev.EventType()+" not published; will retry", "err", err)
		return rec
	}
	out, err := s.store.Update(ctx, k, func(r *record) error {
		r.Owed = nil
		r.LeaseOwner, r.LeaseUntil = "", time.Time{}
		return nil
	})
	if err != nil {
		return rec
	}
	return out
}

// refundReason is what payment records as the reason for giving the
// money back: the staff's, or the cancellation's.
func refundReason(rec record) string {
	if rec.Refund != nil && rec.Refund.Reason != "" {
		return rec.Refund.Reason
	}
	if rec.Error != nil && rec.Error.Code != "" {
		return "order cancelled: " + rec.Error.Code
	}
	return "order cancelled"
}

// Sweep resumes every unfinished saga whose lease has expired. Keys found
// cancelled or refunded with nothing owed are remembered so later sweeps
// skip reading them; a confirmed order is not, since a staff refund may
// reopen it on any instance.
func (s *Orders) Sweep(ctx context.Context) (resumed int, err error) {
	keys, err := s.store.Keys(ctx)
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if ctx.Err() != nil {
			return resumed, ctx.Err()
		}
		s.mu.Lock()
		skip := s.finished[k] || s.inflight[k]
		s.mu.Unlock()
		if skip {
			continue
		}
		rec, err := s.claim(ctx, k)
		switch {
		case errors.Is(err, kit.ErrNoChange):
			if rec.Status != Confirmed {
				s.mu.Lock()
				s.finished[k] = true
				s.mu.Unlock()
			}
			continue
		case errors.Is(err, errLeased):
			continue
		case err != nil:
			kit.Logger(ctx).Warn("sweep: claim failed", "key", k, "err", err)
			continue
		}
		resumed++
		kit.Logger(ctx).Info("resuming saga", "order", rec.ID, "status", rec.Status, "owed", rec.Owed)
		s.run(ctx, k, rec)
	}
	return resumed, nil
}

// Get returns one of the caller's orders.
func (s *Orders) Get(ctx context.Context, userID, id string) (events.Order, error) {
	if !kit.ValidID(id) {
		return events.Order{}, kit.NotFound("order %q not found", id)
	}
	r, _, err := s.store.Get(ctx, key(userID, id))
	if errors.Is(err, kit.ErrNotFound) {
		return events.Order{}, kit.NotFound("order %q not found", id)
	}
	return r.Order, err
}

// List returns the caller's orders, newest first.
func (s *Orders) List(ctx context.Context, userID string) ([]events.Order, error) {
	recs, err := s.store.List(ctx, userID+".*")
	if err != nil {
		return nil, err
	}
	out := make([]events.Order, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Order)
	}
	slices.SortFunc(out, func(a, b events.Order) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}
