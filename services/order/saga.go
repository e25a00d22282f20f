package order

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

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
	// Marked as driven before it exists, so that no sweep of this
	// instance claims it between its creation and its first step.
	mine := s.begin(k)
	var rev uint64
	var err error = errLeased // a concurrent retry of this very order drives it
	if mine {
		rev, err = s.store.Create(ctx, k, rec)
		if err == nil {
			defer s.end(k)
			final := s.drive(ctx, k, rec, rev)
			status, err := Outcome(&final)
			return final.Order, status, err
		}
		s.end(k)
	}
	if errors.Is(err, kit.ErrExists) || errors.Is(err, errLeased) {
		// A retry, or the key reused for another order (orders from before
		// the hash have none, and pass).
		if cur, _, gerr := s.store.Get(ctx, k); errors.Is(gerr, kit.ErrNotFound) && !mine {
			// The first of two identical requests is creating it.
			return rec.Order, http.StatusAccepted, nil
		} else if gerr != nil {
			return events.Order{}, 0, gerr
		} else if cur.RequestHash != "" && cur.RequestHash != rec.RequestHash {
			return events.Order{}, 0, ErrKeyReused
		}
		// A retry: report the order as it stands, driving it if nobody is.
		if r, claimedAt, err := s.claim(ctx, k); err == nil {
			rec, rev = r, claimedAt
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
	} else {
		return events.Order{}, 0, err
	}
	final := s.run(ctx, k, rec, rev)
	status, err := Outcome(&final)
	return final.Order, status, err
}

// claim takes the lease of an unfinished saga whose lease has expired (or
// is this instance's), raising its generation: a driver still holding the
// old token is fenced off. A saga with nothing left to do answers
// kit.ErrNoChange, with its record.
func (s *Orders) claim(ctx context.Context, k string) (record, uint64, error) {
	s.mu.Lock()
	driving := s.inflight[k]
	s.mu.Unlock()
	if driving {
		// This instance drives it right now (a retried POST came in):
		// taking the lease again would fence that driver off.
		return record{}, 0, errLeased
	}
	now := s.now().UTC()
	var finished bool
	rec, rev, err := s.store.UpdateAt(ctx, k, record{}, 0, func(r *record) error {
		finished = r.done()
		if finished {
			return kit.ErrNoChange
		}
		if r.LeaseOwner != "" && r.LeaseOwner != s.owner && now.Before(r.LeaseUntil) {
			return errLeased
		}
		r.Step = r.step()
		r.LeaseOwner, r.LeaseUntil = s.owner, now.Add(s.lease)
		r.LeaseGen++
		return nil
	})
	if err == nil && finished {
		// Update hides ErrNoChange; without it a finished order would be
		// driven again.
		return rec, rev, kit.ErrNoChange
	}
	return rec, rev, err
}

// run drives a leased record through the saga, once per instance at a
// time, until it is done or cannot go on now: each turn publishes the
// outbox, runs the record's step and applies the row its outcome selects.
func (s *Orders) run(ctx context.Context, k string, rec record, rev uint64) record {
	if !s.begin(k) {
		return rec
	}
	defer s.end(k)
	return s.drive(ctx, k, rec, rev)
}

// begin marks k as driven by this instance, false if it already is; end
// clears the mark.
func (s *Orders) begin(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[k] {
		return false
	}
	s.inflight[k] = true
	return true
}

func (s *Orders) end(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, k)
}

// drive is run's loop, for a caller that marked k (begin).
func (s *Orders) drive(ctx context.Context, k string, rec record, rev uint64) record {
	d := s.start(ctx, k, rec, rev)
	defer d.stop()
	log := kit.Logger(ctx).With("order", rec.ID)
	for rec.step() != StepDone {
		if !d.live() {
			return rec
		}
		if err := d.flush(rec); err != nil {
			log.Warn("outbox not published; will resume", "step", rec.step(), "err", err)
			return rec
		}
		on, apply := d.act(rec)
		if on == "" {
			return rec
		}
		row, ok := next(rec.step(), on)
		if !ok {
			log.Error("the saga has no transition", "step", rec.step(), "on", on)
			return rec
		}
		out, err := d.advance(rec, row, apply)
		if err != nil {
			if !errors.Is(err, errFenced) || d.ctx.Err() == nil {
				log.Warn("transition not stored; will resume", "from", row.From, "to", row.To, "err", err)
			}
			return rec
		}
		rec = out
	}
	return rec
}

// stay is a step's answer when it cannot end now: no transition.
func stay() (string, func(*record)) { return "", nil }

// refuse ends a step with OnRefused: the order is cancelled with cause,
// answered with status.
func refuse(status int, cause *kit.Error) (string, func(*record)) {
	e := *cause
	e.Status = 0
	return OnRefused, func(r *record) { r.Error, r.ErrStatus = &e, status }
}

// act runs the record's step: its side effects, each after live(), and
// what it learned for the record. A step whose driver is stopping or has
// lost its lease stays, whatever its call answered.
func (d *driver) act(rec record) (string, func(*record)) {
	switch rec.step() {
	case StepReserve:
		return d.reserve(rec)
	case StepCharge:
		return d.charge(rec)
	case StepCommit:
		return d.commit(rec)
	case StepRelease:
		return d.release(rec)
	case StepRefund:
		return d.refund(rec)
	case StepRepay:
		return d.repay(rec)
	case StepRestock:
		return d.restock(rec)
	case StepConfirm, StepCancel, StepClose:
		return OnOK, nil // the outbox went out before the step ran
	}
	return stay()
}

// reserve holds each item at the price of the moment. Failing fast, with
// nothing reserved, while an upstream is known down.
func (d *driver) reserve(rec record) (string, func(*record)) {
	for _, up := range []struct {
		name string
		open bool
	}{{"product", d.s.stock.Open()}, {"payment", d.s.payments.Open()}} {
		if up.open {
			return refuse(http.StatusServiceUnavailable, kit.Unavailable("%s is unavailable (circuit open)", up.name))
		}
	}
	items := slices.Clone(rec.Items)
	var total int64
	for i, it := range items {
		if !d.live() {
			return stay()
		}
		res, err := d.s.stock.Reserve(d.ctx, it.ProductID, rec.ID, it.Quantity)
		if d.ctx.Err() != nil {
			return stay()
		}
		switch {
		case err == nil:
			items[i].Price = res.UnitPrice
			total += res.UnitPrice * it.Quantity
		case errors.Is(err, ErrUnknownProduct):
			e := kit.Invalid(fmt.Sprintf("items[%d].productId", i), "no product %q", it.ProductID)
			e.Code = CodeUnknownProduct
			return refuse(http.StatusBadRequest, e)
		case errors.Is(err, ErrOutOfStock):
			e := *kit.AsError(err)
			e.Field = fmt.Sprintf("items[%d].quantity", i)
			return refuse(http.StatusConflict, &e)
		case errors.Is(err, ErrAmbiguous) || errors.Is(err, ErrNotSent) || kit.AsError(err).Code == kit.CodeContention:
			// A reserve that may have happened is released with the rest;
			// one that met contention was not, and may be placed again.
			return refuse(http.StatusServiceUnavailable, kit.AsError(err))
		default:
			return refuse(http.StatusConflict, kit.AsError(err))
		}
	}
	// Entering charge: the attempt is on record before it is sent, so any
	// cancellation from here on voids it at payment.
	return OnOK, func(r *record) { r.Items, r.Total, r.ChargeSent = items, total, true }
}

// charge takes the total; an answer lost on the way is asked for.
func (d *driver) charge(rec record) (string, func(*record)) {
	if !d.live() {
		return stay()
	}
	pay, err := d.s.payments.Charge(d.ctx, ChargeRequest{OrderID: rec.ID, UserID: rec.UserID, Amount: rec.Total, Method: rec.PaymentMethod})
	if d.ctx.Err() != nil {
		return stay()
	}
	paid := func(id string) (string, func(*record)) { return OnOK, func(r *record) { r.PaymentID = id } }
	switch {
	case err == nil:
		return paid(pay.ID)
	case errors.Is(err, ErrDeclined):
		e := *kit.AsError(err)
		e.Code = CodePaymentDeclined
		return refuse(http.StatusPaymentRequired, &e)
	case errors.Is(err, ErrAmbiguous):
		// The charge may have happened: ask payment before deciding.
		if !d.live() {
			return stay()
		}
		truth, qerr := d.s.payments.Status(d.ctx, rec.ID)
		if d.ctx.Err() != nil {
			return stay()
		}
		switch {
		case qerr == nil && truth.Status == PaymentCompleted:
			return paid(truth.ID)
		case qerr == nil && truth.Status == PaymentDeclined:
			return refuse(http.StatusPaymentRequired, kit.Errorf(http.StatusPaymentRequired, CodePaymentDeclined, "payment declined"))
		}
		// Unknown, or not there yet: cancel; the refund step voids the
		// order at payment, so a charge still on its way is refused.
		return refuse(http.StatusServiceUnavailable, kit.AsError(err))
	case errors.Is(err, ErrNotSent):
		return refuse(http.StatusServiceUnavailable, kit.AsError(err))
	}
	// Refused for another reason (a voided order, a mismatch).
	return refuse(http.StatusConflict, kit.AsError(err))
}

// commit turns the reservations into sales. Money is taken: only a lost
// reservation cancels (and the refund step returns the money); any other
// failure leaves the step for a resume.
func (d *driver) commit(rec record) (string, func(*record)) {
	for _, it := range rec.Items {
		if !d.live() {
			return stay()
		}
		err := d.s.stock.Commit(d.ctx, it.ProductID, rec.ID)
		if d.ctx.Err() != nil {
			return stay()
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrReservationReleased) || errors.Is(err, ErrReservationNotFound):
			return refuse(http.StatusConflict, kit.AsError(err))
		default:
			kit.Logger(d.ctx).Warn("commit failed; will resume", "order", rec.ID, "product", it.ProductID, "err", err)
			return stay()
		}
	}
	return OnOK, nil
}

// release gives every reservation back (a tombstone where none existed,
// so a late reserve is refused); a sale already made is restocked.
func (d *driver) release(rec record) (string, func(*record)) {
	for _, it := range rec.Items {
		if !d.live() {
			return stay()
		}
		err := d.s.stock.Release(d.ctx, it.ProductID, rec.ID)
		if errors.Is(err, ErrReservationCommitted) {
			err = d.s.stock.Restock(d.ctx, it.ProductID, rec.ID, it.Quantity)
		}
		if err != nil {
			kit.Logger(d.ctx).Warn("release failed; will resume", "order", rec.ID, "product", it.ProductID, "err", err)
			return stay()
		}
	}
	return OnOK, nil
}

// refund settles the money of a cancelled order: after an attempted
// charge, Void asks payment and refunds a completed charge in one step, and
// leaves a marker that refuses a charge arriving later. It is asked until
// payment answers.
func (d *driver) refund(rec record) (string, func(*record)) {
	if !rec.ChargeSent {
		return OnOK, func(r *record) { r.Money = MoneyNone }
	}
	if !d.live() {
		return stay()
	}
	v, err := d.s.payments.Void(d.ctx, rec.ID, refundReason(rec))
	if err != nil {
		kit.Logger(d.ctx).Warn("void failed; will retry", "order", rec.ID, "err", err)
		return stay()
	}
	money := MoneyNone
	if v.MoneyTaken {
		money = MoneyReturned
	}
	return OnOK, func(r *record) { r.Money = money }
}

// repay gives a refunded order's money back: asked, then refunded if the
// charge completed.
func (d *driver) repay(rec record) (string, func(*record)) {
	if !d.live() {
		return stay()
	}
	truth, err := d.s.payments.Status(d.ctx, rec.ID)
	if err != nil {
		kit.Logger(d.ctx).Warn("payment status unknown; will retry", "order", rec.ID, "err", err)
		return stay()
	}
	switch {
	case truth.Status == PaymentCompleted:
		if !d.live() {
			return stay()
		}
		if _, err := d.s.payments.Refund(d.ctx, rec.ID, refundReason(rec)); err != nil {
			kit.Logger(d.ctx).Warn("refund failed; will retry", "order", rec.ID, "err", err)
			return stay()
		}
	case truth.Status != PaymentRefunded:
		// A confirmed order was paid for: payment lost track of it.
		kit.Logger(d.ctx).Error("refunded order has no charge to refund", "order", rec.ID, "payment", rec.PaymentID, "status", truth.Status)
	}
	return OnOK, nil
}

// restock puts what a refunded order bought back on sale, if staff said so.
func (d *driver) restock(rec record) (string, func(*record)) {
	if rec.Refund == nil || !rec.Refund.Restock {
		return OnOK, nil
	}
	for _, it := range rec.Items {
		if !d.live() {
			return stay()
		}
		if err := d.s.stock.Restock(d.ctx, it.ProductID, rec.ID, it.Quantity); err != nil {
			kit.Logger(d.ctx).Warn("restock failed; will retry", "order", rec.ID, "product", it.ProductID, "err", err)
			return stay()
		}
	}
	return OnOK, nil
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
		rec, rev, err := s.claim(ctx, k)
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
		s.run(ctx, k, rec, rev)
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
