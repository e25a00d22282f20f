package order

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// errFenced: the record's lease is no longer this driver's (another
// instance took it over, or the saga finished): the driver stops.
var errFenced = errors.New("saga lease lost")

// token is a driver's fencing token: the lease owner and the generation it
// took the lease at. Each claim raises the generation, so an instance that
// lost its lease and took it again never acts on its old token.
type token struct {
	owner string
	gen   uint64
}

func (t token) holds(r *record) bool { return r.LeaseOwner == t.owner && r.LeaseGen == t.gen }

// driver runs one saga under one lease. Its context ends when the lease is
// lost or the instance stops; every side effect is preceded by live(), so
// a driver that lost its lease stops before the next one.
type driver struct {
	s         *Orders
	k         string
	tok       token
	ctx       context.Context
	cancel    context.CancelFunc
	until     atomic.Int64 // the lease's end as last stored, in unix nanoseconds
	rev       uint64       // the record's revision as this driver last wrote it
	published map[string]bool
	wg        sync.WaitGroup
}

// start begins driving rec, whose lease this instance holds, and renews the
// lease every third of its length while the driver runs.
func (s *Orders) start(ctx context.Context, k string, rec record, rev uint64) *driver {
	dctx, cancel := context.WithCancel(ctx)
	d := &driver{s: s, k: k, tok: token{rec.LeaseOwner, rec.LeaseGen}, ctx: dctx, cancel: cancel, rev: rev, published: map[string]bool{}}
	d.until.Store(rec.LeaseUntil.UnixNano())
	d.wg.Add(1)
	go d.keep()
	return d
}

// stop ends the renewals; the lease stays as stored (released by the last
// transition, or left to expire for a resume).
func (d *driver) stop() {
	d.cancel()
	d.wg.Wait()
}

func (d *driver) keep() {
	defer d.wg.Done()
	t := time.NewTicker(d.s.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			d.renew()
		}
	}
}

// renew extends the lease, if it is still this driver's.
func (d *driver) renew() {
	now := d.s.now().UTC()
	_, err := d.s.store.Update(d.ctx, d.k, func(r *record) error {
		if !d.tok.holds(r) {
			return errFenced
		}
		r.LeaseUntil = now.Add(d.s.lease)
		return nil
	})
	switch {
	case err == nil:
		d.until.Store(now.Add(d.s.lease).UnixNano())
	case errors.Is(err, errFenced):
		kit.Logger(d.ctx).Warn("saga lease lost; stopping", "key", d.k)
		d.cancel()
	}
}

// live reports whether the driver may make its next side effect: the
// instance is not stopping, and its lease, as last stored, has a tenth of
// its length left at least (room for the call to start). A lease running
// out (renewals late under load, or the instance paused) is renewed here
// first, by the same fenced compare-and-set: if another instance claimed
// it meanwhile, that fails and the driver stops.
func (d *driver) live() bool {
	low := func() bool { return d.s.now().Add(d.s.lease / 10).After(time.Unix(0, d.until.Load())) }
	if d.ctx.Err() == nil && low() {
		d.renew()
	}
	if d.ctx.Err() != nil {
		return false
	}
	if low() {
		d.cancel()
		return false
	}
	return true
}

// advance applies a row of the saga to the record in one compare-and-set
// that carries the fencing token: what the step learned (apply), the next
// step, the new status, the row's event into the outbox (events already
// published leave it), and the lease renewed, or released at the end. The
// write goes at the revision the driver last wrote (cur), without reading
// the record again unless a renewal came between.
func (d *driver) advance(cur record, row Transition, apply func(*record)) (record, error) {
	now := d.s.now().UTC()
	var ev outboxEvent
	out, rev, err := d.s.store.UpdateAt(d.ctx, d.k, cur, d.rev, func(r *record) error {
		if !d.tok.holds(r) {
			return errFenced
		}
		if r.step() != row.From {
			return errFenced // moved on under this token: never applied twice
		}
		if apply != nil {
			apply(r)
		}
		kept := r.Outbox[:0:0]
		for _, e := range r.Outbox {
			if !d.published[e.ID] {
				kept = append(kept, e)
			}
		}
		r.Outbox, r.Step, r.Owed = kept, row.To, nil
		if row.Status != "" && row.Status != r.Status {
			reason := ""
			if row.Status == Cancelled && r.Error != nil {
				reason = r.Error.Code
			}
			r.transition(row.Status, reason, now)
		}
		if row.Event != "" {
			var err error
			if ev, err = eventOf(row.Event, r); err != nil {
				return err
			}
			r.Outbox = append(r.Outbox, ev)
		}
		if row.To == StepDone {
			r.LeaseOwner, r.LeaseUntil = "", time.Time{}
		} else {
			r.LeaseUntil = now.Add(d.s.lease)
		}
		return nil
	})
	if err != nil {
		return record{}, err
	}
	d.rev = rev
	d.until.Store(out.LeaseUntil.UnixNano())
	return out, nil
}

// flush publishes the record's outbox, each event with its id as
// Nats-Msg-Id; the next transition removes what went out.
func (d *driver) flush(r record) error {
	for _, e := range r.Outbox {
		if d.published[e.ID] {
			continue
		}
		if err := d.s.pub.Publish(d.ctx, e.ID, "orders/"+r.ID, e.payload()); err != nil {
			return err
		}
		d.published[e.ID] = true
	}
	return nil
}
